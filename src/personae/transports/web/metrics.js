// Reading /metrics (the Prometheus text format) in the browser: samples, sums, and quantiles
// estimated from histogram buckets the way Prometheus' histogram_quantile does.

export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const [, key, raw] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = raw.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

export function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
}

// Cumulative bucket counts of a histogram, summed over its label sets: le -> count.
export function buckets(samples, name) {
  const counts = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = Number(s.labels.le === "+Inf" ? Infinity : s.labels.le);
    counts.set(le, (counts.get(le) ?? 0) + s.value);
  }
  return counts;
}

export function minus(now, before) {
  const diff = new Map();
  for (const [le, count] of now) diff.set(le, count - (before?.get(le) ?? 0));
  return diff;
}

// The q-quantile of observations in ``counts`` (seconds), or null when there are none.
export function quantile(q, counts) {
  const bounds = [...counts.keys()].sort((a, b) => a - b);
  const total = counts.get(Infinity) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const count = counts.get(le);
    if (count >= rank) {
      if (le === Infinity) return lower;
      return lower + ((le - lower) * (rank - below)) / Math.max(count - below, 1e-9);
    }
    lower = le;
    below = count;
  }
  return lower;
}
