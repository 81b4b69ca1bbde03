// Submits the OAuth 2.0 form_post response as soon as the page loads.
document.getElementById("response").submit();
