// The replica page's audit filter: each kind's checkbox shows or hides its events at once. Without this
// script the same form does it by a reload (the server hides the rows of the kinds not asked for).
(function () {
  "use strict";
  var form = document.querySelector("form.audit-filter");
  if (!form) return;
  form.addEventListener("change", function () {
    var shown = {};
    form.querySelectorAll("input[name=kind]").forEach(function (box) { shown[box.value] = box.checked; });
    document.querySelectorAll("table.audit tr[data-kind]").forEach(function (row) {
      row.hidden = !shown[row.getAttribute("data-kind")];
    });
  });
})();
