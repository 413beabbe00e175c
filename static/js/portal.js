// The portal's one script: what htmx's attributes cannot say. Loaded with defer.

// --- Polls ------------------------------------------------------------------------
// The live region and the environment list poll for news (data-poll): every few seconds
// while the tab is visible, none while it is hidden, and at once when it is shown again.
// An answer the page already shows (the browser revalidated it: the same ETag) is left
// out. Otherwise the live region's parts (its children with an id) are brought up to
// date, but a part a person is using stays as it is: an open menu, a form they are
// filling in, credentials they opened, focus on something without an id (focus on an id
// follows it into the new part). The page is then behind (data-behind) until the next
// poll finds nothing in use, which closing the menu asks for at once.
const isPoll = ({ requestConfig, target }) =>
  requestConfig.elt === target && target.hasAttribute("data-poll");
let heldNews = ""; // what the parts left as they were no longer say (see newsFor)

document.addEventListener("htmx:confirm", (event) => {
  if (document.hidden && event.detail.elt.hasAttribute("data-poll")) {
    event.preventDefault();
  }
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    for (const region of document.querySelectorAll("[data-poll]")) {
      htmx.trigger(region, "poll-now");
    }
  }
});

function partsInUse(region) {
  const focused = document.activeElement;
  return [...region.children].filter(
    (part) =>
      part.id &&
      (part.querySelector("details[open], form.confirm, .credentials") ||
        (part.contains(focused) && !focused.id)),
  );
}

document.addEventListener("htmx:beforeSwap", (event) => {
  const { target, xhr } = event.detail;
  if (!isPoll(event.detail)) {
    return; // a person asked for this
  }
  const held = partsInUse(target);
  const etag = xhr.getResponseHeader("ETag");
  const catchingUp = target.hasAttribute("data-behind") && !held.length;
  if (etag && etag === target.dataset.etag && !catchingUp) {
    event.detail.shouldSwap = false;
  } else if (held.length) {
    const answer = document.createElement("template");
    answer.innerHTML = event.detail.serverResponse;
    heldNews = held.flatMap((part) => newsFor(part, answer.content)).join(" ");
    for (const part of held) {
      answer.content.getElementById(part.id)?.setAttribute("hx-preserve", "");
    }
    answer.content.firstElementChild?.setAttribute("data-behind", "");
    event.detail.serverResponse = answer.innerHTML;
  }
});

// What a part left as it was no longer says: the Maintain menu's actions have changed,
// or the form open in it is for an action the page no longer offers.
function newsFor(part, answer) {
  const news = [];
  const actions = (root) =>
    [...root.querySelectorAll("[data-testid=maintain-menu] .menu-item")].map((item) =>
      item.textContent.trim(),
    );
  const menu = part.querySelector("details[open]");
  const fresh = answer.getElementById(part.id);
  if (menu && fresh && actions(part).join() !== actions(fresh).join()) {
    const now = actions(fresh);
    news.push(
      now.length
        ? `${now.join(", ")} ${now.length === 1 ? "is" : "are"} available in the Maintain menu.`
        : "No Maintain action is available now.",
    );
  }
  for (const form of part.querySelectorAll("form.confirm")) {
    const opener = answer.querySelector(`a[href="${CSS.escape(form.getAttribute("action"))}"]`);
    if (!opener) {
      news.push(`${form.querySelector("h3").textContent.trim()} is not available now.`);
    }
  }
  return news;
}

document.addEventListener(
  "toggle",
  (event) => {
    const region = event.target.closest("[data-poll][data-behind]");
    if (region && !event.target.open) {
      htmx.trigger(region, "poll-now");
    }
  },
  true, // toggle does not bubble
);

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
let lastHeldNews = "";

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
  } else if (target && target.querySelector("[data-focus-here]")) {
    target.querySelector("[data-focus-here]").focus(); // what it opened, e.g. credentials
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
  // "Deployed: Restart service, Enable access are available in the Maintain menu."
  const news = [now !== lastStatus && now, heldNews !== lastHeldNews && heldNews];
  if (news.some(Boolean) && announcer()) {
    announcer().textContent = news.filter(Boolean).join(": ");
  }
  lastStatus = now;
  lastHeldNews = heldNews;
  heldNews = "";
  const trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (trigger && !trigger.hasAttribute("data-poll")) {
    focusAfter(trigger, event.detail.target);
    if (event.detail.target && event.detail.target.id.endsWith("-panel")) {
      openers.set(event.detail.target, trigger);
    }
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

// --- Confirm steps ------------------------------------------------------------------
// Escape closes a confirm step as its Cancel does: in a panel of the page, by asking for
// the live region again (data-cancel) or by emptying the panel, and focus goes back to
// what opened it; on a page of its own, by following its Cancel link (data-close). A
// data-close link inside a panel empties the panel rather than reload the page.
const openers = new WeakMap();

function closeStep(form) {
  const cancel = form.querySelector("[data-cancel]");
  const panel = form.closest("[id$=-panel]");
  if (cancel) {
    // A step shown a moment ago is processed by htmx only as it settles: without this,
    // an Escape pressed first would follow the link and reload the page.
    htmx.process(cancel);
    cancel.click();
  } else if (panel) {
    panel.replaceChildren();
    openers.get(panel)?.focus();
  } else {
    form.querySelector("[data-close]")?.click();
  }
}

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.target.closest("details.disclosure[open]")) {
    return;
  }
  const steps = document.querySelectorAll("form.confirm");
  const form =
    event.target.closest("form.confirm") || (steps.length === 1 && steps[0]);
  if (form) {
    closeStep(form);
    event.preventDefault();
  }
});

document.addEventListener("click", (event) => {
  const close = event.target.closest("[id$=-panel] form.confirm [data-close]");
  if (close) {
    event.preventDefault();
    closeStep(close.closest("form.confirm"));
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

// --- Elapsed time of a running operation ----------------------------------------------
// Counted here, not on the server, so that the cached live region stays valid while the
// seconds go by: <span data-elapsed-since="ISO time">.
function elapsedText(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${rest} s`;
  return `${rest} s`;
}

function showElapsed() {
  for (const span of document.querySelectorAll("[data-elapsed-since]")) {
    const since = Date.parse(span.dataset.elapsedSince);
    span.textContent = elapsedText(Math.max(0, Math.round((Date.now() - since) / 1000)));
  }
}
setInterval(showElapsed, 1000);
document.addEventListener("htmx:afterSettle", showElapsed);
document.addEventListener("DOMContentLoaded", showElapsed);

// --- Phone width: what may wait is closed at first -----------------------------------
document.addEventListener("DOMContentLoaded", () => {
  if (window.matchMedia("(max-width: 640px)").matches) {
    for (const part of document.querySelectorAll("details[data-close-narrow]")) {
      part.open = false;
    }
  }
});
