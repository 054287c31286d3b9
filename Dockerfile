# The payments service: API, worker, projections and the PSP simulator share this image.
FROM python:3.11-slim
WORKDIR /app
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY domain domain
COPY app app
COPY adapters adapters
COPY bootstrap bootstrap
COPY cli cli
COPY psp psp
COPY projections projections
COPY workers workers
COPY api api
COPY chaos chaos
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --system payments
USER payments
ENTRYPOINT ["payments"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
