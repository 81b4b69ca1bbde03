// Fills the invitation form from the link's fragment (`#<code>`), which the
// browser never sends to the server, then removes the fragment from the
// address bar and this history entry. The code reaches Civitas only in the
// body of the form's POST.
(function () {
  var field = document.getElementById("invitation");
  var code = window.location.hash.slice(1);
  if (!field || !code) {
    return;
  }
  if (!field.value) {
    field.value = code;
  }
  if (window.history && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
})();
