// The portal's one script: what htmx's attributes cannot say. Loaded with defer.

// --- Polls ------------------------------------------------------------------------
// The live region and the environment list poll for news. When the answer is the one
// already on the page (the browser revalidated it: the same ETag), or while the person
// is in the Maintain menu or filling in a confirm step, the poll leaves the page alone,
// so that focus, an open menu and what they typed stay where they are.
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (event.detail.requestConfig.elt !== target) {
    return; // not a poll: a person asked for this
  }
  const etag = event.detail.xhr.getResponseHeader("ETag");
  const busy = target.querySelector("form.confirm, details[open]");
  if ((etag && etag === target.dataset.etag) || busy) {
    event.detail.shouldSwap = false;
  }
});

// --- What a screen reader hears, and where focus goes -------------------------------
const announcer = () => document.getElementById("status-announcer");
const statusText = () => {
  const line = document.querySelector("#live .status-line");
  if (!line) {
    return "";
  }
  const badge = line.querySelector("[data-testid=status-badge]");
  const note = line.querySelector(".badge-note");
  return [badge, note].filter(Boolean).map((part) => part.textContent.trim()).join(", ");
};
let lastStatus = statusText();

function focusAfter(trigger, target) {
  const live = document.getElementById("live");
  const invalid = document.querySelector(
    ".has-error input, .has-error select, .has-error textarea",
  );
  if (invalid) {
    invalid.focus();
  } else if (target && target.id.endsWith("-panel")) {
    const first = target.querySelector("input:not([type=hidden]), select, textarea, button");
    if (first) {
      first.focus();
    }
  } else if (trigger.hasAttribute("data-cancel")) {
    (document.getElementById("maintain-toggle") || document.getElementById("status-line"))
      .focus();
  } else if (live && live.querySelector("[data-testid=refusal]")) {
    live.querySelector("[data-testid=refusal]").focus();
  } else if (document.getElementById("status-line")) {
    document.getElementById("status-line").focus();
  }
}

document.addEventListener("htmx:afterSettle", (event) => {
  const now = statusText();
  if (now && now !== lastStatus && announcer()) {
    announcer().textContent = now;
  }
  lastStatus = now;
  const trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (trigger && trigger.id !== "live" && trigger.id !== "environments") {
    focusAfter(trigger, event.detail.target);
  }
});

// --- The Maintain menu: a disclosure that behaves like a menu ------------------------
// Arrow keys move between its actions, Escape closes it, and it closes on a choice and
// on a click anywhere else.
document.addEventListener("keydown", (event) => {
  const menu = event.target.closest("details.disclosure");
  if (!menu) {
    return;
  }
  const items = [...menu.querySelectorAll(".menu-item")];
  const at = items.indexOf(event.target);
  if (event.key === "Escape" && menu.open) {
    menu.open = false;
    menu.querySelector("summary").focus();
    event.preventDefault();
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    if (!items.length) {
      return;
    }
    menu.open = true;
    const step = event.key === "ArrowDown" ? 1 : -1;
    const next = at === -1 ? (step === 1 ? 0 : items.length - 1) : at + step;
    items[(next + items.length) % items.length].focus();
    event.preventDefault();
  } else if ((event.key === "Home" || event.key === "End") && at !== -1) {
    items[event.key === "Home" ? 0 : items.length - 1].focus();
    event.preventDefault();
  }
});

document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll("details.disclosure[open]")) {
    if (!menu.contains(event.target) || event.target.closest(".menu-item")) {
      menu.open = false;
    }
  }
});

// --- Credentials: reveal and copy -----------------------------------------------------
document.addEventListener("click", (event) => {
  const reveal = event.target.closest("button[data-reveal]");
  if (reveal) {
    const secret = reveal.parentElement.querySelector("[data-secret]");
    secret.hidden = !secret.hidden;
    reveal.textContent = secret.hidden ? "Reveal" : "Hide";
    reveal.setAttribute("aria-expanded", String(!secret.hidden));
    return;
  }
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
