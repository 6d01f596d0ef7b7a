// A small line chart on a canvas: one line per node, the last 60 points.

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"];
export const HISTORY = 60;

export class Chart {
  private series = new Map<string, number[]>();
  constructor(private canvas: HTMLCanvasElement, private legend: HTMLElement) {}

  /** push adds one point per node (nodes absent from values get none). */
  push(values: Map<string, number>): void {
    for (const [key, v] of values) {
      const s = this.series.get(key) ?? [];
      s.push(v);
      if (s.length > HISTORY) s.shift();
      this.series.set(key, s);
    }
    for (const key of [...this.series.keys()]) if (!values.has(key)) this.series.delete(key);
    this.draw();
  }

  private draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const { width: w, height: h } = this.canvas;
    ctx.clearRect(0, 0, w, h);
    let max = 1;
    for (const s of this.series.values()) for (const v of s) max = Math.max(max, v);
    ctx.strokeStyle = "#ddd";
    ctx.fillStyle = "#666";
    ctx.font = "11px sans-serif";
    for (let i = 0; i <= 4; i++) {
      const y = h - 14 - ((h - 24) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(40, y);
      ctx.lineTo(w, y);
      ctx.stroke();
      ctx.fillText(fmt((max * i) / 4), 2, y + 4);
    }
    this.legend.replaceChildren();
    let i = 0;
    for (const [key, s] of this.series) {
      const color = COLORS[i++ % COLORS.length] ?? "#000";
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      s.forEach((v, j) => {
        const x = 40 + ((w - 44) * (j + HISTORY - s.length)) / (HISTORY - 1);
        const y = h - 14 - ((h - 24) * v) / max;
        if (j === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
      const item = document.createElement("span");
      item.className = "legend-item";
      item.style.borderColor = color;
      item.textContent = key;
      this.legend.append(item);
    }
  }
}

export function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}
