// rag-guard admin console: every read and change goes through the admin API
// (GET keys, GET usage, POST keys/NAME/revoke|restore) with the credential
// the operator signed in with, kept in this page's memory only.
"use strict";

(function () {
  const base = location.pathname.replace(/console\/?$/, "");
  let credential = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function headers() {
    return credential.mode === "secret"
      ? { "x-admin-secret": credential.value }
      : { "authorization": "Bearer " + credential.value };
  }

  async function api(method, path) {
    const resp = await fetch(base + path, { method, headers: headers(), cache: "no-store" });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const detail = body && body.detail ? body.detail : resp.statusText;
      throw new Error(resp.status + " " + detail);
    }
    return body;
  }

  function daysLeft(iso) {
    if (!iso) return null;
    return Math.floor((Date.parse(iso) - Date.now()) / 86400000);
  }

  function chart(days) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const width = 8 * days.length + 2, height = 24;
    svg.setAttribute("class", "chart");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const max = Math.max(1, ...days.map((d) => d.admitted + d.rate_limited));
    days.forEach((d, i) => {
      const base = document.createElementNS(ns, "rect");
      base.setAttribute("x", 1 + i * 8);
      base.setAttribute("y", height - 1);
      base.setAttribute("width", 6);
      base.setAttribute("height", 1);
      base.setAttribute("class", "day");
      svg.append(base);
      const parts = [["", d.admitted], ["limited", d.rate_limited]];
      let top = height;
      for (const [cls, count] of parts) {
        const h = Math.round((count / max) * (height - 2));
        if (h <= 0) continue;
        top -= h;
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", 1 + i * 8);
        rect.setAttribute("y", top);
        rect.setAttribute("width", 6);
        rect.setAttribute("height", h);
        if (cls) rect.setAttribute("class", cls);
        const title = document.createElementNS(ns, "title");
        title.textContent = d.date + ": " + d.admitted + " admitted, " + d.rate_limited + " rate-limited";
        rect.append(title);
        svg.append(rect);
      }
    });
    return svg;
  }

  function row(key, usage) {
    const left = daysLeft(key.expires_at);
    const expires = key.expires_at
      ? el("span", { class: left < 7 ? "soon" : "", text: key.expires_at.slice(0, 10) + (left < 0 ? " (past)" : " (" + left + " d)") })
      : el("span", { class: "muted", text: "never" });
    const days = usage ? usage.days : [];
    const today = days.length ? days[days.length - 1].admitted : 0;
    const rl = key.rate_limit;
    const limits = rl
      ? rl.burst_remaining + "/" + rl.burst + " · " + rl.minute_remaining + "/" + rl.per_minute + " · " + rl.hour_remaining + "/" + rl.per_hour
      : "";
    let action = null;
    if (key.status === "active") {
      action = el("button", { type: "button", class: "revoke", "data-key": key.name, text: "Revoke" });
      action.addEventListener("click", () => change(key.name, "revoke"));
    } else if (key.runtime_override) {
      action = el("button", { type: "button", class: "restore", "data-key": key.name, text: "Restore" });
      action.addEventListener("click", () => change(key.name, "restore"));
    }
    const state = key.status + (key.revoked_by ? " (" + key.revoked_by + ")" : "");
    return el("tr", { "data-key": key.name },
      el("td", { text: key.name }),
      el("td", { text: key.tier }),
      el("td", { class: "state-" + key.status, text: state }),
      el("td", {}, expires),
      el("td", { text: key.last_used ? key.last_used.replace("T", " ").replace("Z", "") : "never" }),
      el("td", { text: String(today) }),
      el("td", {}, chart(days)),
      el("td", { text: limits }),
      el("td", {}, action));
  }

  async function load() {
    const [keys, usage] = await Promise.all([api("GET", "keys"), api("GET", "usage?days=7")]);
    const usageOf = new Map(usage.keys.map((k) => [k.name, k]));
    const tbody = $("keys").querySelector("tbody");
    tbody.replaceChildren(...keys.keys.map((k) => row(k, usageOf.get(k.name))));
    const leak = keys.leak_detection;
    $("leak-settings").textContent = leak.enabled
      ? "A key used from more than " + leak.max_addresses + " addresses within " + leak.window_secs + " s is " + (leak.action === "revoke" ? "revoked" : "reported") + "."
      : "Leak detection is off.";
    const leaks = keys.keys.filter((k) => k.revoked_by === "leak_detection" || k.addresses_in_window > 0);
    $("leaks").replaceChildren(...(leaks.length ? leaks.map((k) => el("li", {
      class: k.revoked_by === "leak_detection" ? "error" : "",
      text: k.name + ": " + (k.revoked_by === "leak_detection" ? "revoked by leak detection at " + k.revoked_at + "; " : "") +
        k.addresses_in_window + " of " + leak.max_addresses + " addresses in the window",
    })) : [el("li", { class: "muted", text: "No key was used from any address in the window." })]));
  }

  async function change(name, action) {
    try {
      await api("POST", "keys/" + encodeURIComponent(name) + "/" + action);
      $("message").textContent = (action === "revoke" ? "Revoked " : "Restored ") + name + ".";
      await load();
    } catch (e) {
      $("message").textContent = "Could not " + action + " " + name + ": " + e.message;
    }
  }

  async function signIn(event) {
    event.preventDefault();
    const mode = document.querySelector("input[name=mode]:checked").value;
    credential = { mode, value: $("credential").value.trim() };
    try {
      await load();
    } catch (e) {
      credential = null;
      $("signin-error").textContent = "Sign-in failed: " + e.message;
      return;
    }
    $("credential").value = "";
    $("signin-error").textContent = "";
    $("signin").hidden = true;
    $("dashboard").hidden = false;
    $("refresh").hidden = false;
    $("signout").hidden = false;
    $("who").textContent = mode === "secret" ? "signed in with the admin secret" : "signed in with a token";
  }

  function signOut() {
    credential = null;
    $("dashboard").hidden = true;
    $("refresh").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("who").textContent = "";
    $("keys").querySelector("tbody").replaceChildren();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("refresh").addEventListener("click", () => load().catch((e) => { $("message").textContent = e.message; }));
    $("signout").addEventListener("click", signOut);
  });
})();
