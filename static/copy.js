// Every Copy button of the site, on every page (one handler: two used to fight over the chat's):
//   <button data-copy="literal text">            the text itself (an upload's link)
//   <button data-copy-from="#field">             a field's value (a new key, new codes)
//   <button data-copy-message>                   the chat message it sits in (its markdown)
// data-copied="…" is what the button says for a moment afterwards (default ✓).
// On a plain-http host the Clipboard API does not exist: a hidden textarea and execCommand do it.
(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      area.remove();
      if (copied) resolve(); else reject(new Error("the browser refused to copy"));
    });
  }

  function flash(button, ok) {
    if (button.dataset.copyLabel === undefined) button.dataset.copyLabel = button.textContent;
    button.textContent = ok ? (button.dataset.copied || "✓") : "✗";
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(function () { button.textContent = button.dataset.copyLabel; }, 1500);
  }

  function textFor(button) {
    if (button.hasAttribute("data-copy-message")) {
      var message = button.closest(".msg");
      return message ? message.getAttribute("data-raw") || "" : null;
    }
    if (button.hasAttribute("data-copy-from")) {
      var field = document.querySelector(button.getAttribute("data-copy-from"));
      if (!field) return null;
      if (field.select) field.select();
      return "value" in field ? field.value : field.textContent;
    }
    return button.getAttribute("data-copy");
  }

  window.permachatCopy = function (button, text) {
    copyText(text).then(function () { flash(button, true); }, function () { flash(button, false); });
  };

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy],[data-copy-from],[data-copy-message]");
    if (!button) return;
    var text = textFor(button);
    if (text !== null) window.permachatCopy(button, text);
  });
})();
