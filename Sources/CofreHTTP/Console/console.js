// Cofre console: progressive enhancement only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Erasure: the button stays disabled until the typed confirmation is the subject id.
  const form = document.getElementById("erase-form");
  if (form) {
    const input = document.getElementById("confirm");
    const button = document.getElementById("erase");
    const subject = form.dataset.subject;
    const update = () => { button.disabled = input.value.trim() !== subject; };
    input.addEventListener("input", update);
    update();
  }
});
