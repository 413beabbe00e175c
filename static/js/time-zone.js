// Tell the portal the browser's time zone, so that it shows and reads times in it
// (unless the user chose one in their settings): environments/time_zones.py reads the
// cookie. A file of its own, as the Content Security Policy allows no inline script.
(() => {
  let zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return;
  }
  if (!zone) {
    return;
  }
  // IANA names ("America/Los_Angeles") are valid cookie values as they are.
  const cookie = `tz=${zone}`;
  if (document.cookie.split("; ").includes(cookie)) {
    return;
  }
  const secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${cookie}; path=/; max-age=31536000; SameSite=Lax${secure}`;
})();
