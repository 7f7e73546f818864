// Keystone dashboard behaviour, without inline scripts (the pages' Content-Security-Policy forbids them).
// Each behaviour hangs off a data- attribute, so a page opts in by markup alone.
(function () {
  "use strict";

  // <button data-copy="text">: copies the text and says so.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(button.getAttribute("data-copy")).then(done, done);
    } else {
      var field = document.createElement("textarea");
      field.value = button.getAttribute("data-copy");
      document.body.appendChild(field);
      field.select();
      document.execCommand("copy");
      field.remove();
      done();
    }
  });
})();
