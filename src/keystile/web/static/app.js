// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Copy buttons: <button data-copy="input-id" hidden> are revealed when the clipboard API exists.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    if (!navigator.clipboard) { return; }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var field = document.getElementById(btn.getAttribute("data-copy"));
      if (!field) { return; }
      navigator.clipboard.writeText(field.value).then(function () {
        btn.textContent = "Copied";
        btn.setAttribute("aria-live", "polite");
        setTimeout(function () { btn.textContent = "Copy"; }, 2000);
      }, function () {
        field.select();
      });
    });
  });
  // Confirm dialogs for destructive forms: <form data-confirm="question">. A yes marks the form confirmed
  // (`_confirmed`), so the server does not ask again with its own page (what a browser without scripts gets).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); return; }
      var confirmed = form.querySelector("input[name='_confirmed']");
      if (confirmed) { confirmed.value = "yes"; }
    });
  });
  // Strategy form: choosing a DCR provider pre-fills the issuer (the server does the same when left blank).
  var provider = document.getElementById("f-dcr_provider_id");
  var issuer = document.getElementById("f-issuer");
  if (provider && issuer) {
    var filled = "";
    provider.addEventListener("change", function () {
      var opt = provider.options[provider.selectedIndex];
      var value = opt ? opt.getAttribute("data-issuer") : null;
      if (value && (issuer.value === "" || issuer.value === filled)) {
        issuer.value = value;
        filled = value;
      }
    });
  }
})();
