/* Engineering Feed: progressive enhancement only. Without this file every feature works
 * through plain links and forms; with it: instant search, "load more" in place, keyboard
 * navigation (/ j k o), a theme toggle, a collapsible filter panel on small screens, and the
 * reading state without reloads (save, read, notes with a live preview; keys s m U n). */
(function () {
  "use strict";

  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var root = document.documentElement;
  var reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  var darkScheme = window.matchMedia("(prefers-color-scheme: dark)");

  function parseHTML(text) {
    return new DOMParser().parseFromString(text, "text/html");
  }

  function announce(text) {
    var status = $("#search-status");
    if (status) { status.textContent = text; }
  }

  /* ---------------------------------------------------------------- theme toggle */
  function currentTheme() {
    var chosen = root.getAttribute("data-theme");
    if (chosen === "dark" || chosen === "light") { return chosen; }
    return darkScheme.matches ? "dark" : "light";
  }

  function initTheme() {
    var toggle = $("#theme-toggle");
    if (!toggle) { return; }
    var sync = function () {
      var dark = currentTheme() === "dark";
      toggle.setAttribute("aria-pressed", dark ? "true" : "false");
      toggle.title = dark ? "Switch to the light theme" : "Switch to the dark theme";
    };
    toggle.hidden = false;
    sync();
    toggle.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { window.localStorage.setItem("engfeed-theme", next); } catch (e) { /* private mode */ }
      sync();
    });
    if (darkScheme.addEventListener) { darkScheme.addEventListener("change", sync); }
  }

  /* ---------------------------------------------------------------- filter panel */
  function initFilters() {
    var panel = $("#filters");
    if (!panel) { return; }
    var wide = window.matchMedia("(min-width: 900px)");
    var touched = false;
    var summary = $("summary", panel);
    if (summary) { summary.addEventListener("click", function () { touched = true; }); }
    var sync = function () {
      if (wide.matches) { panel.open = true; } else if (!touched) { panel.open = false; }
    };
    sync();
    if (wide.addEventListener) { wide.addEventListener("change", function () { touched = false; sync(); }); }
  }

  /* ---------------------------------------------------------------- instant search */
  var inflight = null;

  function syncAlternateLinks(doc) {
    ["application/atom+xml", "application/feed+json"].forEach(function (type) {
      var mine = $('link[rel="alternate"][type="' + type + '"]');
      var theirs = $('link[rel="alternate"][type="' + type + '"]', doc);
      if (mine && theirs) { mine.setAttribute("href", theirs.getAttribute("href")); }
    });
  }

  function loadView(url) {
    if (inflight) { inflight.abort(); }
    var controller = new AbortController();
    inflight = controller;
    var results = $("#results");
    if (results) { results.setAttribute("aria-busy", "true"); }
    return fetch(url, { signal: controller.signal, headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (resp) { return resp.text(); })
      .then(function (text) {
        if (controller !== inflight) { return; }
        var doc = parseHTML(text);
        var fresh = $("#results", doc);
        var current = $("#results");
        if (!fresh || !current) { window.location.href = url; return; }
        current.replaceWith(document.adoptNode(fresh));
        var freshFilters = $("#filters .filters__body", doc);
        var myFilters = $("#filters .filters__body");
        if (freshFilters && myFilters) { myFilters.replaceWith(document.adoptNode(freshFilters)); }
        syncAlternateLinks(doc);
        document.title = doc.title;
        window.history.replaceState(null, "", url);
        var count = $("#results-count");
        announce(count ? count.textContent : "");
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") { return; }
        var r = $("#results");
        if (r) { r.removeAttribute("aria-busy"); }
      })
      .finally(function () { if (inflight === controller) { inflight = null; } });
  }

  function initSearch() {
    var form = $("#search-form");
    var input = $("#q");
    if (!form || !input) { return; }
    var last = input.value.trim();
    var timer = 0;
    var viewURL = function () {
      var params = new URLSearchParams(new FormData(form));
      if (!(params.get("q") || "").trim()) { params.delete("q"); }
      var query = params.toString();
      return "/" + (query ? "?" + query : "");
    };
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var q = input.value.trim();
        if (q === last || q.length === 1) { return; }
        last = q;
        loadView(viewURL());
      }, 280);
    });
    form.addEventListener("submit", function () {
      window.clearTimeout(timer);
      if (inflight) { inflight.abort(); }
    });
  }

  /* ---------------------------------------------------------------- load more */
  function initLoadMore() {
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("[data-load-more]") : null;
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) { return; }
      var list = $("#cards");
      if (!list) { return; }
      event.preventDefault();
      if (link.getAttribute("aria-busy") === "true") { return; }
      link.setAttribute("aria-busy", "true");
      var label = link.textContent;
      link.textContent = "Loading…";
      var url = new URL(link.href, window.location.href);
      url.searchParams.set("partial", "1");
      var replace = link.getAttribute("data-load-more") === "replace";
      fetch(url.toString(), { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (resp) { return resp.text(); })
        .then(function (text) {
          var doc = parseHTML(text);
          var before = $$("[data-card]", list).length;
          var items = $$("#cards > li", doc);
          if (replace) { list.textContent = ""; }
          items.forEach(function (li) { list.appendChild(document.adoptNode(li)); });
          var pager = $("[data-pager]", doc);
          var newest = pager ? $("[data-newest]", pager) : null;
          if (newest) { newest.remove(); }
          var mine = $("[data-pager]");
          if (pager && mine) { mine.replaceWith(document.adoptNode(pager)); }
          var cards = $$("[data-card]", list);
          var first = cards[before];
          if (first) { setCurrent(first); }
          announce("Loaded " + Math.max(0, cards.length - before) + " more");
        })
        .catch(function () {
          link.removeAttribute("aria-busy");
          link.textContent = label;
          window.location.href = link.href;
        });
    });
  }

  /* ---------------------------------------------------------------- keyboard */
  function cardList() { return $$("[data-card]"); }

  function currentCard() {
    var active = document.activeElement;
    var inCard = active && active.closest ? active.closest("[data-card]") : null;
    return inCard || $("[data-card].is-current");
  }

  function setCurrent(card) {
    cardList().forEach(function (c) { c.classList.remove("is-current"); });
    card.classList.add("is-current");
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth" });
  }

  function move(delta) {
    var cards = cardList();
    if (!cards.length) { return; }
    var i = cards.indexOf(currentCard());
    if (i < 0) { i = delta > 0 ? 0 : cards.length - 1; } else { i = Math.min(cards.length - 1, Math.max(0, i + delta)); }
    setCurrent(cards[i]);
  }

  function initKeys() {
    $$("[data-keys-help]").forEach(function (el) { el.hidden = false; });
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.metaKey || event.ctrlKey || event.altKey) { return; }
      var target = event.target;
      var input = $("#q");
      if (event.key === "Escape" && input && target === input) { input.blur(); return; }
      if (target && target.closest && target.closest("input, textarea, select, [contenteditable]")) { return; }
      if (event.key === "/") {
        if (!input) { return; }
        event.preventDefault();
        input.focus();
        input.select();
      } else if (event.key === "j" || event.key === "k") {
        event.preventDefault();
        move(event.key === "j" ? 1 : -1);
      } else if (event.key === "o") {
        var card = currentCard();
        var link = card ? $("[data-card-link]", card) : null;
        if (link) { event.preventDefault(); markOpened(card); link.click(); }
      } else if (event.key === "s" || event.key === "m" || event.key === "U") {
        var form = stateForm(event.key === "s" ? "save" : "read");
        if (!form) { return; }
        if (event.key === "U") {  // Shift+U: unread, whatever the state
          var value = $("[data-state-value]", form);
          if (value && value.value !== "1") { event.preventDefault(); submitState(form); }
          return;
        }
        event.preventDefault();
        submitState(form);
      } else if (event.key === "n") {
        var note = $("[data-note-text]");
        if (note) { event.preventDefault(); note.focus(); }
      }
    });
  }

  /* ---------------------------------------------------------------- reading state */
  function postForm(form, extra, keepalive) {
    var data = new URLSearchParams(new FormData(form));
    Object.keys(extra || {}).forEach(function (k) { data.set(k, extra[k]); });
    return fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      keepalive: !!keepalive,  // outlives the page when the reader follows the link at once
      headers: { Accept: "application/json" }
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) { throw new Error((body.error && body.error.message) || "Not saved"); }
        return body;
      });
    });
  }

  function applyState(uid, state) {
    $$('[data-uid="' + (window.CSS && CSS.escape ? CSS.escape(uid) : uid) + '"]').forEach(function (box) {
      if (box.hasAttribute("data-card")) {
        box.setAttribute("data-read", state.read ? "true" : "false");
        box.setAttribute("data-saved", state.saved ? "true" : "false");
        box.classList.toggle("card--read", !!state.read);
      }
    });
    $$('form[data-state-form][action="/a/' + encodeURIComponent(uid) + '/save"]').forEach(function (f) {
      syncToggle(f, state.saved, "Saved", "Save");
    });
    $$('form[data-state-form][action="/a/' + encodeURIComponent(uid) + '/read"]').forEach(function (f) {
      syncToggle(f, state.read, "Mark unread", "Mark read");
    });
  }

  function syncToggle(form, on, onLabel, offLabel) {
    var button = $("button", form);
    var value = $("[data-state-value]", form);
    var label = $("[data-state-label]", form);
    if (button) { button.setAttribute("aria-pressed", on ? "true" : "false"); }
    if (value) { value.value = on ? "0" : "1"; }
    if (label) { label.textContent = on ? onLabel : offLabel; }
  }

  function uidOf(form) {
    var m = /^\/a\/(.+)\/(save|read|note)$/.exec(new URL(form.action, window.location.href).pathname);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function submitState(form) {
    var uid = uidOf(form);
    var button = $("button", form);
    if (button) { button.setAttribute("aria-busy", "true"); }
    return postForm(form)
      .then(function (state) {
        applyState(uid, state);
        announce(form.getAttribute("data-state-form") === "save"
          ? (state.saved ? "Saved to your reading list" : "Removed from your reading list")
          : (state.read ? "Marked as read" : "Marked as unread"));
      })
      .catch(function () { form.submit(); })
      .finally(function () { if (button) { button.removeAttribute("aria-busy"); } });
  }

  function initState() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form || !form.matches) { return; }
      if (form.matches("form[data-state-form]")) {
        event.preventDefault();
        submitState(form);
      } else if (form.matches("form[data-note-form]")) {
        event.preventDefault();
        var status = $("[data-note-status]", form);
        if (status) { status.textContent = "Saving…"; }
        postForm(form)
          .then(function (state) {
            var preview = $("[data-note-preview]");
            if (preview) {
              preview.innerHTML = state.note_html || '<p class="muted">No note yet. What you write shows here.</p>';
            }
            if (status) { status.textContent = state.note ? "Note saved." : "Note cleared."; }
          })
          .catch(function (err) { if (status) { status.textContent = err.message; } });
      }
    });
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("[data-card-link]") : null;
      if (link && event.button === 0) { markOpened(link.closest("[data-card]")); }
    });
    var text = $("[data-note-text]");
    var preview = $("[data-note-preview]");
    var noteForm = $("form[data-note-form]");
    if (text && preview && noteForm) {
      var timer = 0;
      text.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          var data = new URLSearchParams(new FormData(noteForm));
          fetch("/preview", { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } })
            .then(function (resp) { return resp.ok ? resp.json() : null; })
            .then(function (body) {
              if (body) { preview.innerHTML = body.html || '<p class="muted">No note yet. What you write shows here.</p>'; }
            })
            .catch(function () { /* the saved preview stays */ });
        }, 400);
      });
    }
  }

  function stateForm(kind) {
    var card = currentCard();
    var scope = card || $("[data-article]") ? (card || document) : null;
    return scope ? $('form[data-state-form="' + kind + '"]', scope) : null;
  }

  function markOpened(card) {
    var form = card ? $('form[data-state-form="read"]', card) : null;
    if (form && card.getAttribute("data-read") !== "true") {
      postForm(form, { value: "1" }, true).then(function (state) { applyState(uidOf(form), state); }).catch(function () {});
    }
  }

  function init() {
    initTheme();
    initFilters();
    initSearch();
    initLoadMore();
    initKeys();
    initState();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
