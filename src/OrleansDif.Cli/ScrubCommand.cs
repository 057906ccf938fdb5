using System.CommandLine;
using System.Text.Json;
using OrleansDif.Protection;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif scrub IMAGE</c>: offline verification of every sector of a disk image.</summary>
internal static class ScrubCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var image = new Argument<string>("image") { Description = "Path of the disk image" };
        var sectorSize = new Option<int?>("--sector-size") { Description = "512 or 4096 (when the image has no sidecar)" };
        sectorSize.AcceptOnlyFromAmong("512", "4096");
        var piType = new Option<int?>("--pi-type") { Description = "1, 2 or 3 (when the image has no sidecar)" };
        piType.AcceptOnlyFromAmong("1", "2", "3");
        var appTag = new Option<string?>("--app-tag") { Description = "Expected application tag (checked only when given)" };
        var appMask = new Option<string?>("--app-mask") { Description = "Bits of the application tag compared (default 0xFFFF)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var guard = new Option<string?>("--guard") { Description = "crc16 (T10 DIF, 8-byte tuples) or crc64 (NVMe 64b Guard, 16-byte tuples), when the image has no sidecar" };
        guard.AcceptOnlyFromAmong("crc16", "crc64");

        var command = new Command("scrub", "Verify every sector's PI tuple of a disk image (exit 0 clean, 1 errors, 2 bad usage)")
        {
            image, sectorSize, piType, appTag, appMask, json, guard,
        };
        command.SetAction(parse =>
        {
            ushort? tag = null;
            ushort mask = 0xFFFF;
            string? tagText = parse.GetValue(appTag);
            string? maskText = parse.GetValue(appMask);
            if (tagText is not null)
            {
                if (!CliApp.TryParseNumber(tagText, out ulong v) || v > 0xFFFF)
                {
                    stderr.WriteLine($"orleansdif scrub: --app-tag '{tagText}' is not a 16-bit number");
                    return CliApp.ExitUsage;
                }
                tag = (ushort)v;
            }
            if (maskText is not null)
            {
                if (!CliApp.TryParseNumber(maskText, out ulong m) || m > 0xFFFF)
                {
                    stderr.WriteLine($"orleansdif scrub: --app-mask '{maskText}' is not a 16-bit number");
                    return CliApp.ExitUsage;
                }
                mask = (ushort)m;
            }
            int? size = parse.GetValue(sectorSize);
            int? type = parse.GetValue(piType);
            string path = parse.GetValue(image)!;
            ScrubReport report;
            try
            {
                report = Scrubber.Scrub(path, size is int s ? new SectorFormat(s) : null, (PiType?)type, tag, mask,
                    parse.GetValue(guard) is string g ? g == "crc64" : null);
            }
            catch (Exception e) when (e is DifArgumentException or IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"orleansdif scrub: {e.Message}");
                return CliApp.ExitUsage;
            }
            if (parse.GetValue(json))
            {
                stdout.WriteLine(ToJson(report));
            }
            else
            {
                WriteHuman(stdout, report);
            }
            return report.Clean ? CliApp.ExitOk : CliApp.ExitFailed;
        });
        return command;
    }

    public static string ToJson(ScrubReport report)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("image", report.Image);
            w.WriteNumber("sectors", report.Sectors);
            w.WriteBoolean("clean", report.Clean);
            w.WriteStartArray("errors");
            foreach (PiError e in report.Errors)
            {
                w.WriteStartObject();
                w.WriteNumber("lba", e.Lba);
                w.WriteString("check", PiChecks.Name(e.Check));
                w.WriteNumber("expected", e.Expected);
                w.WriteNumber("actual", e.Actual);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteHuman(TextWriter o, ScrubReport report)
    {
        o.WriteLine($"{report.Image}: {report.Sectors} sectors checked, {report.Errors.Count} bad");
        foreach (PiError e in report.Errors)
        {
            o.WriteLine($"  {e}");
        }
        o.WriteLine(report.Clean ? "clean" : "NOT CLEAN");
    }
}
