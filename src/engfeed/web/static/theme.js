/* Applies the reader's stored theme before first paint (loaded blocking in <head>, tiny). */
(function () {
  "use strict";
  try {
    var stored = window.localStorage.getItem("engfeed-theme");
    if (stored === "dark" || stored === "light") {
      document.documentElement.setAttribute("data-theme", stored);
    }
  } catch (e) {
    /* storage blocked: follow prefers-color-scheme */
  }
})();
