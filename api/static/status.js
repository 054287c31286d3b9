// The buyer's status page: ask for news while the payment is in progress (the server says how
// often, and 0 when the status is final), and pay with another card after a decline.
// Every value from the server is written with textContent, never as HTML.
(function () {
  "use strict";

  var root = document.getElementById("payment");
  if (!root) {
    return;
  }
  var stateUrl = root.dataset.stateUrl;
  var attemptsUrl = root.dataset.attemptsUrl;
  var version = Number(root.dataset.version);
  var pollMs = Number(root.dataset.pollMs);
  var timer = null;
  var form = document.getElementById("retry-form");
  var input = document.getElementById("payment-method");
  var button = document.getElementById("pay");
  var errorBox = document.getElementById("pm-error");
  // One Idempotency-Key per try: kept when the network failed (the same try, sent again, is
  // never charged twice), replaced once the server answered or the input changed.
  var pending = null;

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20),
      hex.slice(20)].join("-");
  }

  function setText(id, value) {
    document.getElementById(id).textContent = value;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    node.className = className;
    node.textContent = text;
    return node;
  }

  function renderAttempts(attempts) {
    var list = document.getElementById("timeline");
    while (list.children.length > 1) {
      list.removeChild(list.lastElementChild);
    }
    attempts.forEach(function (a) {
      var item = element("li", "tone-" + a.tone, "");
      item.appendChild(element("strong", "", "Attempt " + a.number + ": " + a.label));
      item.appendChild(element("span", "method", " (" + a.method + ")"));
      if (a.explanation) {
        item.appendChild(element("span", "why", a.explanation));
      }
      list.appendChild(item);
    });
  }

  function render(view) {
    if (view.version >= version) {
      version = view.version;
      pollMs = view.poll_ms;
      document.getElementById("state").className = "state tone-" + view.tone;
      setText("headline", view.headline);
      setText("detail", view.detail);
      document.getElementById("live").hidden = !view.poll_ms;
      document.getElementById("retry").hidden = !view.can_retry;
      document.getElementById("confirm").hidden = !view.action_url;
      if (view.action_url) {
        document.getElementById("confirm-link").href = view.action_url;
      }
      renderAttempts(view.attempts);
    }
    schedule(pollMs);
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = ms ? window.setTimeout(poll, ms) : null;
  }

  function poll() {
    fetch(stateUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(render)
      .catch(function () {
        schedule(Math.max(pollMs, 5000));
      });
  }

  function problemText(problem) {
    var text = (problem.errors && problem.errors[0] && problem.errors[0].message) ||
      problem.detail || "That did not work. Please try again.";
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function answered(result) {
    pending = null;
    if (result.ok) {
      input.value = "";
      render(result.body);
      return;
    }
    errorBox.textContent = problemText(result.body);
    input.focus();
    if (result.status === 409) {
      poll();
    }
  }

  function submit(event) {
    event.preventDefault();
    var method = input.value.trim();
    if (!method) {
      errorBox.textContent = "Please enter a payment method.";
      input.focus();
      return;
    }
    if (!pending || pending.method !== method) {
      pending = { method: method, key: newKey() };
    }
    errorBox.textContent = "";
    button.disabled = true;
    fetch(attemptsUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Idempotency-Key": pending.key,
        Accept: "application/json",
      },
      body: JSON.stringify({ payment_method: method }),
    })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return { ok: response.ok, status: response.status, body: body };
        });
      })
      .then(answered)
      .catch(function () {
        errorBox.textContent = "We could not reach the server. Press Pay again: " +
          "you will not be charged twice.";
      })
      .then(function () {
        button.disabled = false;
      });
  }

  if (form) {
    form.addEventListener("submit", submit);
  }
  schedule(pollMs);
})();
