using System.CommandLine;
using System.Text.Json;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif bench crc</c>: guard-tag throughput against System.IO.Hashing and ISA-L.</summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var bench = new Command("bench", "Benchmarks (measured in one run, on this machine)");
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var rounds = new Option<int>("--rounds") { Description = "Interleaved rounds; the median is reported", DefaultValueFactory = _ => 9 };
        var crc = new Command("crc", "GB/s of guard tags: ours, fused copy, plain copy, System.IO.Hashing, ISA-L") { json, rounds };
        crc.SetAction(parse =>
        {
            int n = parse.GetValue(rounds);
            if (n < 1 || n > 1000)
            {
                stderr.WriteLine("orleansdif bench crc: --rounds must be 1..1000");
                return CliApp.ExitUsage;
            }
            CrcBenchmark.Result r = CrcBenchmark.Run(n);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(ToJson(r));
                return CliApp.ExitOk;
            }
            stdout.WriteLine($"CRC-16/T10-DIF, kernel {r.Kernel}, median of {r.Rounds} interleaved rounds, 1 MiB working set");
            foreach (string key in CrcBenchmark.Keys)
            {
                stdout.WriteLine(r.GBps[key] is double v ? $"  {key,-17} {v,7:F2} GB/s" : $"  {key,-17}     n/a (libisal2 not installed)");
            }
            if (r.GBps["isal4k"] is double isal && r.GBps["isalCopy4k"] is double isalCopy)
            {
                stdout.WriteLine($"  guard4k / isal4k         = {r.GBps["guard4k"] / isal:F2}");
                stdout.WriteLine($"  copyGuard4k / isalCopy4k = {r.GBps["copyGuard4k"] / isalCopy:F2}");
            }
            stdout.WriteLine($"  guard4k / sioh4k         = {r.GBps["guard4k"] / r.GBps["sioh4k"]:F2}");
            if (r.GBps["isalCrc64_4k"] is double isal64)
            {
                stdout.WriteLine($"  crc64guard4k / isalCrc64_4k = {r.GBps["crc64guard4k"] / isal64:F2}");
            }
            stdout.WriteLine($"  crc64guard4k / sioh64_4k    = {r.GBps["crc64guard4k"] / r.GBps["sioh64_4k"]:F2}");
            // The fused copy against a copy and a CRC done one after the other (times add: 1 / (1/a + 1/b)).
            double separate = 1 / (1 / r.GBps["copy4k"]!.Value + 1 / r.GBps["crc64guard4k"]!.Value);
            stdout.WriteLine($"  crc64copyGuard4k / (copy4k then crc64guard4k) = {r.GBps["crc64copyGuard4k"] / separate:F2}");
            return CliApp.ExitOk;
        });
        bench.Subcommands.Add(crc);
        bench.Subcommands.Add(ClusterBenchmark.Create(stdout, stderr));
        bench.Subcommands.Add(NbdBenchmark.Create(stdout, stderr));
        return bench;
    }

    private static string ToJson(CrcBenchmark.Result r)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("kernel", r.Kernel);
            w.WriteNumber("rounds", r.Rounds);
            foreach (string key in CrcBenchmark.Keys)
            {
                if (r.GBps[key] is double v)
                {
                    w.WriteNumber(key, Math.Round(v, 3));
                }
                else
                {
                    w.WriteNull(key);
                }
            }
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
