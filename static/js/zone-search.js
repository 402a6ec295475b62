// The time-zone list is long (about 600 zones): a search box above it keeps only the zones
// whose name, region or offset holds what is typed. Without JavaScript the list is unchanged
// and typing on it jumps to a zone.
(function () {
  "use strict";
  document.querySelectorAll("select[data-search-label]").forEach(function (select) {
    var id = select.id + "-search";
    var label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = select.dataset.searchLabel;
    var input = document.createElement("input");
    input.type = "search";
    input.id = id;
    input.className = "zone-search";
    input.setAttribute("autocomplete", "off");
    input.setAttribute("aria-controls", select.id);
    select.parentNode.insertBefore(label, select);
    select.parentNode.insertBefore(input, select);

    function fold(text) {
      return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
    }
    input.addEventListener("input", function () {
      var words = fold(input.value).split(/\s+/).filter(Boolean);
      var first = null;
      select.querySelectorAll("optgroup").forEach(function (group) {
        var shown = 0;
        group.querySelectorAll("option").forEach(function (option) {
          var text = fold(option.value + " " + option.textContent + " " + group.label);
          var match = words.every(function (word) { return text.indexOf(word) !== -1; });
          option.hidden = !match;
          if (match) { shown += 1; if (!first) first = option; }
        });
        group.hidden = shown === 0;
      });
      // The first match is chosen, as a combobox would: the learner sees what they will save.
      if (first && words.length && select.selectedOptions[0] && select.selectedOptions[0].hidden) {
        first.selected = true;
      }
    });
  });
})();
