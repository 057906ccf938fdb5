namespace OrleansDif.LoadGenerator;

/// <summary>Throughput and p99 latency over time, one line per run (policy), as a PNG.</summary>
public static class ChartWriter
{
    public static void Write(string path, IReadOnlyList<LoadReport> reports)
    {
        var plot = new ScottPlot.Plot();
        foreach (LoadReport r in reports)
        {
            double[] xs = r.Timeline.Select(t => (double)t.Second).ToArray();
            if (xs.Length == 0)
            {
                continue;
            }
            var ops = plot.Add.Scatter(xs, r.Timeline.Select(t => (double)t.Ops).ToArray());
            ops.LegendText = $"{r.Policy} ops/s";
            var p99 = plot.Add.Scatter(xs, r.Timeline.Select(t => t.P99Ms).ToArray());
            p99.LegendText = $"{r.Policy} p99 ms";
            p99.LinePattern = ScottPlot.LinePattern.Dashed;
            p99.Axes.YAxis = plot.Axes.Right;
        }
        plot.Title($"OrleansDif load ({reports[0].Workload}, {reports[0].Writers} writers)");
        plot.XLabel("seconds");
        plot.YLabel("operations per second");
        plot.Axes.Right.Label.Text = "p99 latency (ms)";
        plot.ShowLegend();
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }
        plot.SavePng(path, 1100, 600);
    }
}
