"""The composition root: settings, building the container, migrations, logging, failpoints."""
