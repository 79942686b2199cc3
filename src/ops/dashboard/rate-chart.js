// A line chart of the latest samples of a few series, drawn on a <canvas> by hand (no library:
// the dashboard loads nothing from elsewhere and has no build step).
export class RateChart {
  /** `series`: [{ color }]; `capacity`: samples kept, oldest dropped first. */
  constructor(canvas, series, capacity) {
    this.canvas = canvas;
    this.series = series;
    this.capacity = capacity;
    this.samples = series.map(() => []);
  }

  /** Adds one value per series and redraws; returns the scale's top value. */
  push(values) {
    values.forEach((v, i) => {
      const s = this.samples[i];
      s.push(v);
      if (s.length > this.capacity) s.shift();
    });
    return this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext('2d');
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);

    const top = niceCeiling(Math.max(1, ...this.samples.flat()));
    const pad = { left: 48, right: 10, top: 10, bottom: 10 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const y = (v) => pad.top + plotH - (v / top) * plotH;

    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      ctx.strokeStyle = '#e6e9ed';
      ctx.beginPath();
      ctx.moveTo(pad.left, y(v));
      ctx.lineTo(width - pad.right, y(v));
      ctx.stroke();
      ctx.fillStyle = '#5f6b78';
      ctx.fillText(formatNumber(v), pad.left - 6, y(v));
    }

    // Newest sample at the right edge; the chart fills in from there.
    const step = plotW / (this.capacity - 1);
    this.samples.forEach((points, i) => {
      if (points.length === 0) return;
      ctx.strokeStyle = this.series[i].color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((v, j) => {
        const x = pad.left + plotW - (points.length - 1 - j) * step;
        if (j === 0) ctx.moveTo(x, y(v));
        else ctx.lineTo(x, y(v));
      });
      ctx.stroke();
      if (points.length === 1) {
        // One sample is no line yet: a dot, so the chart is seen to be running.
        ctx.fillStyle = this.series[i].color;
        ctx.beginPath();
        ctx.arc(pad.left + plotW, y(points[0]), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    });
    return top;
  }
}

/** 1, 2 or 5 times a power of ten, at least `v`: round numbers on the axis. */
function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}

export function formatNumber(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
