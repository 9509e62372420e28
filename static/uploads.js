// Uploads to Arweave from the browser: quote, then send with a progress bar, then refresh the list.
// window.permachatUpload(file, onProgress) is the same upload for other pages (the chat composer).
(function () {
  "use strict";

  async function getTicket(ticketUrl) {
    const response = await fetch(ticketUrl, { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : "No API key for uploads.");
    return body;
  }

  // Resolves with the upload's JSON (id, url, local_url, cost_usd, status...); rejects with a readable message.
  function permachatUpload(file, onProgress, ticketUrl) {
    return getTicket(ticketUrl || "/uploads/ticket").then(function (ticket) {
      return new Promise(function (resolve, reject) {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", ticket.upload_url);
        xhr.setRequestHeader("X-Upload-Ticket", ticket.ticket);
        xhr.responseType = "json";
        xhr.upload.onprogress = function (event) {
          if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
        };
        xhr.onload = function () {
          const body = xhr.response || {};
          if (xhr.status >= 200 && xhr.status < 300) resolve(body);
          else reject(new Error(body.error ? body.error.message : "Upload failed (HTTP " + xhr.status + ")."));
        };
        xhr.onerror = function () { reject(new Error("The connection broke during the upload.")); };
        const form = new FormData();
        form.append("file", file, file.name);
        xhr.send(form);
      });
    });
  }
  window.permachatUpload = permachatUpload;

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }

  function refreshList(root) {
    if (window.htmx) {
      return htmx.ajax("GET", root.dataset.listUrl, { target: "#upload-list", swap: "outerHTML" });
    }
    window.location.reload();
  }

  function setUp(root) {
    const input = root.querySelector("#file-input");
    const zone = root.querySelector("#dropzone");
    const quote = root.querySelector("#quote");
    const quoteText = root.querySelector("#quote-text");
    const button = root.querySelector("#upload-button");
    const progress = root.querySelector("#upload-progress");
    const result = root.querySelector("#upload-result");
    const maxBytes = Number(root.dataset.maxBytes);
    let chosen = null;

    function say(text, isError) {
      result.textContent = text;
      result.className = isError ? "error" : "";
    }

    async function choose(file) {
      chosen = null;
      quote.hidden = true;
      say("");
      if (!file) return;
      if (file.size === 0) return say("The file is empty.", true);
      if (file.size > maxBytes) return say("The file is larger than " + formatBytes(maxBytes) + ".", true);
      say("Asking the network for a price…");
      try {
        const response = await fetch(root.dataset.priceUrl + "?bytes=" + file.size);
        const body = await response.json();
        if (!response.ok) return say(body.error.message, true);
        chosen = file;
        quoteText.textContent = file.name + " · " + formatBytes(file.size) + " · costs " + body.cost_usd;
        quote.hidden = false;
        button.disabled = false;
        say("");
      } catch (err) {
        say("Could not get a price: " + err.message, true);
      }
    }

    input.addEventListener("change", function () { choose(input.files[0]); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
    });

    button.addEventListener("click", async function () {
      if (!chosen) return;
      button.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      say("Uploading…");
      try {
        const body = await permachatUpload(chosen, function (fraction) {
          progress.value = Math.round(fraction * 100);
        }, root.dataset.ticketUrl);
        progress.value = 100;
        quote.hidden = true;
        say("Stored: " + body.url + " (" + body.cost_usd + ")");
        chosen = null;
        input.value = "";
      } catch (err) {
        say(err.message, true);
        button.disabled = false;
      }
      refreshList(root);
    });
  }

  // The chat composer's link button: store the chosen file, then insert its permanent link in the message.
  document.addEventListener("change", function (event) {
    const input = event.target.closest ? event.target.closest("[data-arweave-attach]") : null;
    if (!input || !input.files.length) return;
    const file = input.files[0];
    const notice = document.getElementById("composer-notice");
    const box = document.getElementById("composer-input");
    const tell = function (text, isError) {
      if (!notice) return;
      notice.textContent = text;
      notice.className = isError ? "error" : "muted";
    };
    tell("Storing " + file.name + " on Arweave… 0%");
    permachatUpload(file, function (fraction) {
      tell("Storing " + file.name + " on Arweave… " + Math.round(fraction * 100) + "%");
    }).then(function (body) {
      const link = "[" + file.name.replace(/[\[\]]/g, "") + "](" + body.url + ")";
      if (box) {
        const at = box.selectionStart != null ? box.selectionStart : box.value.length;
        const before = box.value.slice(0, at), after = box.value.slice(at);
        box.value = before + (before && !/\s$/.test(before) ? " " : "") + link + after;
        box.dispatchEvent(new Event("input", { bubbles: true }));
        box.focus();
      }
      tell("Stored on Arweave for " + body.cost_usd + ".");
    }).catch(function (err) {
      tell(err.message, true);
    }).finally(function () {
      input.value = "";
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.getElementById("uploader");
    if (root) setUp(root);
  });
})();
