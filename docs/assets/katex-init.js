// Render the math that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \] spans, with the
// KaTeX vendored under assets/katex (no CDN: the site works offline).
function renderMinimaxMath() {
  document.querySelectorAll(".arithmatex").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMinimaxMath);
} else {
  document.addEventListener("DOMContentLoaded", renderMinimaxMath);
}
