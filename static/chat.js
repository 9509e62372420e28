// The chat page's small progressive enhancements; htmx does the requests.
// Enter sends, Shift+Enter is a new line; images can be pasted, dropped or picked;
// copy buttons, the key's show/hide toggle, the phone sidebar, auto-scroll.
(function () {
  "use strict";

  function composer() { return document.getElementById("composer"); }
  function thread() { return document.getElementById("thread"); }
  function imageInput() { var f = composer(); return f && f.querySelector('input[name="images"]'); }

  function nearBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 120; }
  function toBottom() { var t = thread(); if (t) t.scrollTop = t.scrollHeight; }

  function grow(area) {
    area.style.height = "auto";
    area.style.height = Math.min(area.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }

  function showPreviews() {
    var input = imageInput(), box = document.getElementById("attachments-preview");
    if (!input || !box) return;
    box.textContent = "";
    Array.prototype.forEach.call(input.files, function (file, i) {
      var fig = document.createElement("figure"), img = document.createElement("img"), rm = document.createElement("button");
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      rm.type = "button";
      rm.textContent = "×";
      rm.setAttribute("aria-label", "Remove " + file.name);
      rm.addEventListener("click", function () { removeFile(i); });
      fig.appendChild(img);
      fig.appendChild(rm);
      box.appendChild(fig);
    });
  }

  function setFiles(files) {
    var input = imageInput();
    if (!input) return;
    var dt = new DataTransfer();
    Array.prototype.forEach.call(input.files, function (f) { dt.items.add(f); });
    files.forEach(function (f) { if (f.type.indexOf("image/") === 0) dt.items.add(f); });
    input.files = dt.files;
    showPreviews();
  }

  function removeFile(index) {
    var input = imageInput(), dt = new DataTransfer();
    Array.prototype.forEach.call(input.files, function (f, i) { if (i !== index) dt.items.add(f); });
    input.files = dt.files;
    showPreviews();
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && t.id === "composer-input" && e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      if (t.value.trim() || (imageInput() && imageInput().files.length)) composer().requestSubmit();
    }
  });

  document.addEventListener("input", function (e) { if (e.target.id === "composer-input") grow(e.target); });

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.name === "images" && t.closest("#composer")) showPreviews();
    if (t.matches("[data-shortcut-pick]") && t.value) {
      var area = document.getElementById("system-prompt");
      area.value = t.value;
      area.dispatchEvent(new Event("change", { bubbles: true }));
      t.value = "";
    }
  });

  document.addEventListener("paste", function (e) {
    if (!e.target.closest || !e.target.closest("#composer")) return;
    var files = Array.prototype.filter.call(e.clipboardData.files || [], function (f) { return f.type.indexOf("image/") === 0; });
    if (files.length) { e.preventDefault(); setFiles(files); }
  });
  document.addEventListener("dragover", function (e) { if (e.target.closest && e.target.closest(".chat-main")) e.preventDefault(); });
  document.addEventListener("drop", function (e) {
    if (!e.target.closest || !e.target.closest(".chat-main")) return;
    e.preventDefault();
    setFiles(Array.prototype.slice.call(e.dataTransfer.files || []));
  });

  document.addEventListener("click", function (e) {
    var t = e.target.closest ? e.target : e.target.parentElement;
    var eye = t.closest("[data-toggle-key]");
    if (eye) {
      var field = eye.parentElement.querySelector('input[name="key"]');
      field.type = field.type === "password" ? "text" : "password";
    }
    if (t.closest("[data-toggle-sidebar]")) document.body.classList.toggle("sidebar-open");
    if (t.closest("#sidebar a[data-conv-id]")) document.body.classList.remove("sidebar-open");
  });

  // htmx moves between conversations without a page load: the language switch
  // should come back to where the reader is now, not where the page was loaded.
  document.addEventListener("submit", function (e) {
    var next = e.target.matches && e.target.matches(".lang-switch") && e.target.querySelector('input[name="next"]');
    if (next) next.value = location.pathname + location.search;
  });

  // A copy button on each finished code block (labelled like the message's own).
  function addCodeCopy(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll(".msg-assistant:not([sse-connect]) pre.highlight").forEach(function (pre) {
      if (pre.querySelector(".code-copy")) return;
      var label = document.querySelector("[data-copy-message]"), button = document.createElement("button");
      button.type = "button";
      button.className = "code-copy";
      button.textContent = label ? label.textContent : "Copy";
      if (label) button.dataset.copied = label.dataset.copied;
      button.addEventListener("click", function () {
        var code = pre.querySelector("code");
        window.permachatCopy(button, code ? code.textContent : pre.textContent);  // static/copy.js
      });
      pre.appendChild(button);
    });
  }
  document.addEventListener("htmx:load", function (e) { addCodeCopy(e.detail.elt.parentElement || e.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { addCodeCopy(document); });

  document.addEventListener("htmx:afterRequest", function (e) {
    var form = composer();
    if (e.detail.elt !== form || !e.detail.successful) return;
    if (e.detail.xhr.getResponseHeader("HX-Retarget")) return;  // a notice: keep what was typed
    var area = document.getElementById("composer-input");
    area.value = "";
    grow(area);
    var input = imageInput();
    if (input) { input.value = ""; showPreviews(); }
    toBottom();
  });

  // Follow a streaming reply while the reader is at the bottom.
  var follow = true;
  document.addEventListener("htmx:sseBeforeMessage", function () { var t = thread(); follow = t && nearBottom(t); });
  document.addEventListener("htmx:sseMessage", function () { if (follow) toBottom(); });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.detail.target && (e.detail.target.id === "chat-main" || e.detail.target.id === "thread")) toBottom();
  });
  document.addEventListener("DOMContentLoaded", toBottom);
})();
