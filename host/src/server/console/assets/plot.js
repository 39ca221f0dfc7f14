// Line plots as SVG, for the console: one time axis, a line per name, gaps where a value is
// missing. No library: the page must work offline and stay small.
"use strict";

const Plot = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 420, H = 170, LEFT = 46, RIGHT = 8, TOP = 10, BOTTOM = 22;
  const COLORS = ["#4e9af1", "#e8684a", "#5ab56e", "#c77dd6", "#e0b339", "#3fbfbf",
                  "#f08cb6", "#8c8c8c"];

  function el(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function format(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 10) return v.toFixed(0);
    if (a >= 0.01) return v.toFixed(2);
    return v.toExponential(1);
  }

  function clock(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 5);
  }

  // Draws `lines` ({name: [value or null]}) over `times` (ms) into `container`, replacing
  // what was there. Returns the number of points drawn.
  function lines(container, { title, times, lines, unit }) {
    container.replaceChildren();
    container.classList.add("plot");
    const heading = document.createElement("h3");
    heading.textContent = title;
    container.append(heading);
    const names = Object.keys(lines || {});
    const values = names.flatMap((n) => lines[n]).filter((v) => v !== null && isFinite(v));
    if (!times || times.length < 2 || values.length === 0) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No data yet.";
      container.append(empty);
      return 0;
    }
    const t0 = times[0], t1 = times[times.length - 1];
    let lo = Math.min(0, ...values), hi = Math.max(...values);
    if (hi === lo) hi = lo + 1;
    const x = (t) => LEFT + ((t - t0) / (t1 - t0 || 1)) * (W - LEFT - RIGHT);
    const y = (v) => TOP + (1 - (v - lo) / (hi - lo)) * (H - TOP - BOTTOM);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.append(el("line", { x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v), class: "grid" }));
      svg.append(el("text", { x: LEFT - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" },
                    format(v) + (unit || "")));
    }
    svg.append(el("text", { x: LEFT, y: H - 6, class: "tick" }, clock(t0)));
    svg.append(el("text", { x: W - RIGHT, y: H - 6, class: "tick", "text-anchor": "end" },
                  clock(t1)));
    let drawn = 0;
    const legend = document.createElement("ul");
    legend.className = "legend";
    names.forEach((name, i) => {
      const color = COLORS[i % COLORS.length];
      let d = "", pen = false, last = null;
      lines[name].forEach((v, j) => {
        if (v === null || !isFinite(v)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(times[j]).toFixed(1)},${y(v).toFixed(1)} `;
        pen = true;
        drawn += 1;
        last = v;
      });
      if (d) svg.append(el("path", { d, stroke: color, class: "line", "data-name": name }));
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      item.append(swatch, `${name}${last === null ? "" : ": " + format(last) + (unit || "")}`);
      legend.append(item);
    });
    container.append(svg, legend);
    return drawn;
  }

  return { lines };
})();
