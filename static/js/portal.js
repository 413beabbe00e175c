// The portal's one script: what htmx's attributes cannot say.

// The live region and the environment list poll for news. When the answer is the one
// already on the page (the browser revalidated it: the same ETag), or when the person
// is filling in a confirm step, the poll leaves the page alone, so that focus, an open
// menu and what they typed stay where they are.
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  const polled = event.detail.requestConfig.elt === target;
  if (!polled) {
    return;
  }
  const etag = event.detail.xhr.getResponseHeader("ETag");
  if ((etag && etag === target.dataset.etag) || target.querySelector("form.confirm")) {
    event.detail.shouldSwap = false;
  }
});

// Copy buttons: the text to copy is in data-copy.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) {
    return;
  }
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  });
});
