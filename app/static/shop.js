// Progressive enhancement for the customer pages: seat map, hold countdown, in-page card
// tokenization. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("has-js");
  // The page's texts in its language (shop/base.html), English when missing.
  var strings = {};
  var stringsElement = document.getElementById("shop-strings");
  if (stringsElement) { strings = JSON.parse(stringsElement.textContent); }
  var t = function (key, english) { return strings[key] || english; };

  // Countdowns: a hold's (or a turn's) time left, where the page is loaded again at zero, and
  // the wait for one's turn in a waiting room, whose page reloads itself (meta refresh).
  var countDown = function (element, done, reload) {
    var left = parseInt(element.dataset.seconds, 10);
    var tick = function () {
      if (left <= 0) {
        element.textContent = done;
        if (reload) { window.location.reload(); }
        return;
      }
      element.textContent = Math.floor(left / 60) + " min " + String(left % 60).padStart(2, "0") + " s";
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  };
  var countdown = document.getElementById("countdown");
  if (countdown) { countDown(countdown, t("expired", "time is up"), true); }
  // The carts the event page lists: at zero the page is loaded again (without them).
  document.querySelectorAll(".cart-countdown").forEach(function (element) {
    countDown(element, t("expired", "time is up"), true);
  });
  var wait = document.getElementById("wait");
  if (wait) { countDown(wait, t("soon", "any moment now"), false); }

  // Card form: tokenize with the processor, then pay with the token only.
  var cardForm = document.getElementById("card-form");
  if (cardForm) {
    cardForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = {};
      new FormData(cardForm).forEach(function (value, key) { if (key !== "return_url") data[key] = value; });
      cardForm.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
      cardForm.querySelectorAll("input").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      var button = cardForm.querySelector("button");
      button.disabled = true;
      fetch(cardForm.action, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(data),
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        if (!result.ok) {
          var field = result.body.field || "number";
          var slot = cardForm.querySelector('.field-error[data-for="' + field + '"]');
          if (slot) slot.textContent = result.body.message || t("field", "Check this field.");
          var input = cardForm.querySelector('[name="' + field + '"]');
          if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
          button.disabled = false;
          return;
        }
        var payForm = document.getElementById("token-pay-form");
        payForm.querySelector('[name="card_token"]').value = result.body.token;
        payForm.submit();
      }).catch(function () {
        button.disabled = false;
        alert(t("unreachable", "Could not reach the payment processor. Try again."));
      });
    });
  }

  // Seat map: draws one section's seats from the compact availability JSON.
  var seatmap = document.getElementById("seatmap");
  if (!seatmap) return;
  var grid = document.getElementById("seatmap-grid");
  var form = document.getElementById("seatmap-form");
  var count = document.getElementById("seatmap-count");
  var submit = document.getElementById("seatmap-submit");
  var max = parseInt(seatmap.dataset.max, 10);
  var chosen = new Set();
  var names = { "0": "free", "1": "held", "2": "sold", "3": "blocked" };
  var typeList = document.getElementById("seatmap-types");
  var types = []; // the section's ticket types: each chosen seat gets one (none: its price)
  var picked = {}; // seat id -> type id

  function refresh() {
    form.querySelectorAll('input[name="spot_ids"]').forEach(function (el) { el.remove(); });
    typeList.textContent = "";
    chosen.forEach(function (id) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = "spot_ids"; input.value = id;
      form.appendChild(input);
      if (!types.length) return;
      var item = document.createElement("li");
      var label = document.createElement("label");
      label.textContent = grid.querySelector('[data-id="' + id + '"]').title.split(" (")[0] + " ";
      var select = document.createElement("select");
      select.name = "ticket_types";
      types.forEach(function (type) {
        var option = document.createElement("option");
        option.value = type.id; option.textContent = type.name;
        select.appendChild(option);
      });
      select.value = picked[id] || String(types[0].id);
      select.addEventListener("change", function () { picked[id] = select.value; });
      label.appendChild(select);
      item.appendChild(label);
      typeList.appendChild(item);
    });
    count.textContent = chosen.size;
    submit.disabled = chosen.size === 0;
  }

  function draw(section) {
    grid.textContent = "";
    chosen.clear();
    refresh();
    var rowEl = null, currentRow = null;
    for (var i = 0; i < section.ids.length; i++) {
      var row = section.rows[i] || "";
      if (rowEl === null || row !== currentRow) {
        rowEl = document.createElement("div");
        rowEl.className = "seat-row";
        var label = document.createElement("span");
        label.className = "row-label"; label.textContent = row;
        rowEl.appendChild(label);
        grid.appendChild(rowEl);
        currentRow = row;
      }
      var state = section.status.charAt(i);
      var seat = document.createElement(state === "0" ? "button" : "span");
      seat.className = "seat" + (state === "0" ? "" : " " + names[state]);
      seat.textContent = section.seats[i];
      seat.title = row + " " + section.seats[i] + " (" + names[state] + ")";
      seat.dataset.id = section.ids[i];
      if (state === "0") {
        seat.type = "button";
        seat.setAttribute("aria-pressed", "false");
        seat.addEventListener("click", function (event) {
          var el = event.currentTarget, id = el.dataset.id;
          if (chosen.has(id)) { chosen.delete(id); el.classList.remove("chosen"); el.setAttribute("aria-pressed", "false"); }
          else if (chosen.size < max) { chosen.add(id); el.classList.add("chosen"); el.setAttribute("aria-pressed", "true"); }
          refresh();
        });
      }
      rowEl.appendChild(seat);
    }
  }

  document.querySelectorAll("[data-seatmap]").forEach(function (button) {
    button.addEventListener("click", function () {
      var sectionId = button.dataset.seatmap;
      types = JSON.parse(button.dataset.types || "[]");
      picked = {};
      seatmap.hidden = false;
      grid.textContent = t("loading", "Loading...");
      document.getElementById("seatmap-title").textContent = "- " + button.closest("tr").cells[0].firstChild.textContent.trim();
      fetch(seatmap.dataset.spotsUrl + "?section_id=" + sectionId)
        .then(function (r) { return r.json(); })
        .then(function (body) { draw(body.sections[0]); seatmap.scrollIntoView({ behavior: "smooth" }); });
    });
  });
})();
