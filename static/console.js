// Copy buttons on the console pages: <button data-copy="#selector" data-copied="Copied">.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    document.execCommand("copy"); // pages served over plain http have no clipboard API
  }
  const label = button.textContent;
  button.textContent = button.dataset.copied || "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});
