// A new key's field selects itself when clicked, ready to copy (no inline handler: the CSP allows none).
document.addEventListener("click", (event) => {
  const field = event.target.closest("input[data-select-on-click]");
  if (field) field.select();
});

// A users search that lands while the admin has a row's form open ("Adjust balance") must not
// close it: the open form, with what was typed and the focus, is moved into the row the search
// brings back (or the row is kept when the search no longer lists it). The rest is fresh.
let openForms = { target: null, forms: [] };
document.addEventListener("htmx:beforeSwap", (event) => {
  const table = event.detail.target;
  openForms = { target: null, forms: [] };
  if (!table || table.id !== "users-table" || !event.detail.shouldSwap) return;
  openForms = { target: table, forms: [...table.querySelectorAll("tr[data-user] details[open]")].map((details) => ({
    details, row: details.closest("tr"), focused: details.contains(document.activeElement) ? document.activeElement : null,
  })) };
});
document.addEventListener("htmx:afterSwap", (event) => {
  const { target, forms } = openForms;
  openForms = { target: null, forms: [] };
  if (event.detail.target !== target) return;
  const body = document.querySelector("#users-table tbody");
  for (const { details, row, focused } of forms) {
    if (!body) break;
    const fresh = [...body.querySelectorAll("tr[data-user]")].find((r) => r.dataset.user === row.dataset.user);
    const slot = fresh && fresh.querySelector("details");
    if (slot) slot.replaceWith(details);
    else body.prepend(row);
    htmx.process(fresh ? details : row); // htmx let go of them when it swapped them out
    if (focused) focused.focus();
  }
});
