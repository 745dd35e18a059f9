// A small SVG line chart: each series is a list of numbers (null leaves a gap).

const NS = "http://www.w3.org/2000/svg";
const W = 300;
const H = 120;

function svgEl(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export function lineChart(svg, series, { unit = "" } = {}) {
  const values = series.flatMap((s) => s.points).filter((v) => v !== null);
  const top = Math.max(...values, 0) || 1;
  const length = Math.max(...series.map((s) => s.points.length), 2);
  const x = (i) => (i / (length - 1)) * (W - 40) + 36;
  const y = (v) => H - 14 - (v / top) * (H - 24);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const label = (text, yPos) => {
    const t = svgEl("text", { x: 2, y: yPos });
    t.textContent = text;
    return t;
  };
  const children = [
    svgEl("line", { class: "axis", x1: 36, y1: H - 14, x2: W, y2: H - 14 }),
    label(`${format(top)}${unit}`, 12),
    label(`0${unit}`, H - 14),
  ];
  for (const s of series) {
    let run = [];
    const flush = () => {
      if (run.length) children.push(svgEl("polyline", { class: `line ${s.cls ?? ""}`, points: run.join(" ") }));
      run = [];
    };
    s.points.forEach((v, i) => {
      if (v === null) return flush();
      run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      // A dot too: a point between two gaps (one busy interval) has no line to show it.
      children.push(svgEl("circle", { class: `dot ${s.cls ?? ""}`, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5 }));
    });
    flush();
  }
  svg.replaceChildren(...children);
}

export function format(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
