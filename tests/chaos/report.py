"""A chaos run's report as one HTML page: the verdicts, the fault timeline and an SVG picture of
every client operation over time (green acknowledged, grey outcome unknown, red failed read)
under bands that mark when each fault was in force."""

import html

COLORS = {"ok": "#2e9d4c", "unknown": "#9a9a9a", "failed": "#d2423b"}


def svg(summary, ops, t0_ns):
    width, left, row_h = 1200, 70, 14
    clients = sorted({c for c, *_ in ops}) or [0]
    faults = summary["faults"]
    end_s = max([summary["seconds"] + 5.0] + [f["end"] for f in faults] +
                [((r or c) - t0_ns) / 1e9 for _, c, r, _, _ in ops])
    lanes = len(faults) and min(len(faults), 4)
    top = 20 + lanes * 16
    height = top + row_h * len(clients) + 30
    scale = (width - left - 10) / max(end_s, 1.0)

    def x(sec):
        return left + max(0.0, sec) * scale

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="10">' % (width, height)]
    for k, f in enumerate(faults):
        x0, x1 = x(f["start"]), max(x(f["end"]), x(f["start"]) + 2)
        y = 20 + (k % max(lanes, 1)) * 16
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4c542" '
                   'fill-opacity="0.25"><title>%s</title></rect>' % (
                       x0, y, x1 - x0, height - y - 20, html.escape(f["what"])))
        out.append('<text x="%.1f" y="%d">%s</text>' % (x0 + 2, y + 11,
                                                        html.escape(f["what"][:40])))
    for row, c in enumerate(clients):
        y = top + row * row_h
        out.append('<text x="4" y="%d">%s</text>' % (y + 10, "final" if c == 0 else "client %d" % c))
    index = {c: i for i, c in enumerate(clients)}
    for c, call, ret, kind, outcome in ops:
        y = top + index[c] * row_h + 2
        s = (call - t0_ns) / 1e9
        e = (ret - t0_ns) / 1e9 if ret is not None else s + 1.0
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s">'
                   '<title>%s %s %.3f-%s</title></rect>' % (
                       x(s), y, max(x(e) - x(s), 1.0), row_h - 4, COLORS[outcome], kind,
                       outcome, s, "%.3f" % e if ret is not None else "?"))
    axis_y = height - 14
    for sec in range(0, int(end_s) + 1, 5):
        out.append('<text x="%.1f" y="%d">%ds</text>' % (x(sec), axis_y + 10, sec))
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>' % (
            x(sec), top, x(sec), axis_y))
    out.append("</svg>")
    return "\n".join(out)


def workloads(summary):
    """The watch, lock and list-append workloads' counts, one line each."""
    items = "".join("<li>%s: %s</li>" % (html.escape(name), html.escape(", ".join(
        "%s %s" % (k, v) for k, v in counts.items())))
        for name, counts in summary.get("workloads", {}).items())
    return "<ul>%s</ul>" % items if items else ""


def write_html(path, summary, ops, t0_ns, events):
    rows = "".join(
        "<tr><td>%s</td><td>%s</td><td>%s</td></tr>" % (
            html.escape(k), "ok" if v["ok"] else "<b>FAIL</b>", html.escape(v["detail"]))
        for k, v in summary["checks"].items())
    timeline = "".join("<li>[%.2f s] %s</li>" % (t, html.escape(text)) for t, text in events)
    c = summary["operations"]
    page = """<!doctype html><html><head><meta charset="utf-8"><title>chaos %(name)s seed
%(seed)d</title></head><body style="font-family:sans-serif">
<h2>%(name)s, seed %(seed)d: %(verdict)s</h2>
<p>%(members)d members, faults: %(mix)s, lease reads: %(lease)s%(unsafe)s, %(seconds).0f s.
Operations: %(ok)d acknowledged, %(unknown)d unknown outcome, %(failed)d failed reads.</p>
%(workloads)s
<table border="1" cellpadding="3" style="border-collapse:collapse">
<tr><th>check</th><th>result</th><th>detail</th></tr>%(rows)s</table>
<h3>Operations and faults</h3>%(svg)s
<h3>Timeline</h3><ul>%(timeline)s</ul>
<p>Repeat: <code>%(repeat)s</code></p></body></html>""" % {
        "name": html.escape(summary["name"]), "seed": summary["seed"],
        "verdict": html.escape(summary["verdict"]), "members": summary["members"],
        "mix": summary["mix"], "lease": "on" if summary["lease_reads"] else "off",
        "unsafe": (", UNSAFE " + html.escape(summary["unsafe"])) if summary["unsafe"] else "",
        "seconds": summary["seconds"], "ok": c["ok"], "unknown": c["unknown"],
        "failed": c["failed"], "workloads": workloads(summary), "rows": rows,
        "svg": svg(summary, ops, t0_ns), "timeline": timeline,
        "repeat": html.escape(summary["repeat"])}
    with open(path, "w") as f:
        f.write(page)
