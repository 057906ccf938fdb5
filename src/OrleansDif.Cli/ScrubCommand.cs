using System.CommandLine;
using System.Text.Json;
using OrleansDif.Cluster;
using OrleansDif.LoadGenerator;
using OrleansDif.Protection;

namespace OrleansDif.Cli;

/// <summary>
/// <c>orleansdif scrub IMAGE</c>: offline verification of every sector of a disk image; <c>orleansdif scrub --volume
/// ID</c>: a scrub of a live volume through the cluster, every disk comparing and mending its mirror copies.
/// </summary>
internal static class ScrubCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var image = new Argument<string?>("image") { Description = "Path of the disk image", Arity = ArgumentArity.ZeroOrOne };
        var volume = new Option<string?>("--volume") { Description = "Scrub a live volume through the cluster instead of an image: every disk compares its slots with its mirror copies and mends them (exit 0 when nothing is left failing or out of sync)" };
        var config = SiloCommands.ConfigOption();
        var set = SiloCommands.SetOption();
        var local = new Option<bool>("--local") { Description = "With --volume: start the config's silos as child processes first (over the config's data directory)" };
        var sectorSize = new Option<int?>("--sector-size") { Description = "512 or 4096 (when the image has no sidecar)" };
        sectorSize.AcceptOnlyFromAmong("512", "4096");
        var piType = new Option<int?>("--pi-type") { Description = "1, 2 or 3 (when the image has no sidecar)" };
        piType.AcceptOnlyFromAmong("1", "2", "3");
        var appTag = new Option<string?>("--app-tag") { Description = "Expected application tag (checked only when given)" };
        var appMask = new Option<string?>("--app-mask") { Description = "Bits of the application tag compared (default 0xFFFF)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var guard = new Option<string?>("--guard") { Description = "crc16 (T10 DIF, 8-byte tuples) or crc64 (NVMe 64b Guard, 16-byte tuples), when the image has no sidecar" };
        guard.AcceptOnlyFromAmong("crc16", "crc64");

        var command = new Command("scrub", "Verify every sector's PI tuple of a disk image, or scrub a live volume's disks and mirror copies (exit 0 clean, 1 errors, 2 bad usage)")
        {
            image, sectorSize, piType, appTag, appMask, json, guard, volume, config, set, local,
        };
        command.SetAction(async (parse, ct) =>
        {
            string? volumeId = parse.GetValue(volume);
            if ((volumeId is null) == (parse.GetValue(image) is null))
            {
                await stderr.WriteLineAsync("orleansdif scrub: give an IMAGE, or --volume ID to scrub a live volume, not both");
                return CliApp.ExitUsage;
            }
            if (volumeId is not null)
            {
                return await ScrubVolumeAsync(volumeId, parse.GetValue(config)!, parse.GetValue(set) ?? [], parse.GetValue(local),
                    parse.GetValue(json), stdout, stderr, ct);
            }
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

    /// <summary>Every disk of <paramref name="id"/> scrubbed through the cluster: one line (or JSON object) per disk.</summary>
    private static async Task<int> ScrubVolumeAsync(string id, string configPath, string[] setValues, bool local, bool json,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        try
        {
            ClusterConfig cluster = ClusterConfig.Load(configPath, SiloCommands.Overrides(setValues));
            // Progress goes to stderr: stdout carries the result (one JSON object with --json).
            await using ClusterSession session = await ClusterSession.OpenAsync(cluster, configPath, setValues, local, CliApp.AnsiConsoleFor(stderr), ct);
            VolumeConfig v = await session.Client.Volume(id).GetConfig();
            ScrubResult[] results = await Task.WhenAll(Enumerable.Range(0, v.Disks).Select(d => session.Client.Disk(id, d).Scrub()));
            bool clean = results.All(r => r.Unrepairable == 0 && r.OutOfSync == 0);
            if (json)
            {
                await stdout.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    volume = id,
                    mirrors = v.Mirrors,
                    clean,
                    disks = results.Select((r, d) => new
                    {
                        disk = d,
                        slots = r.Slots,
                        repaired = r.Repaired,
                        resynced = r.Resynced,
                        unrepairable = r.Unrepairable,
                        outOfSync = r.OutOfSync,
                    }),
                }));
            }
            else
            {
                for (int d = 0; d < results.Length; d++)
                {
                    ScrubResult r = results[d];
                    await stdout.WriteLineAsync($"{id} disk {d} ({v.Mirrors} {(v.Mirrors == 1 ? "copy" : "copies")}): {r.Slots} page slots compared, {r.Repaired} repaired, {r.Resynced} resynced, {r.Unrepairable} failing on every copy, {r.OutOfSync} still out of sync");
                }
                await stdout.WriteLineAsync(clean ? "clean" : "NOT CLEAN");
            }
            return clean ? CliApp.ExitOk : CliApp.ExitFailed;
        }
        catch (Exception e) when (e is ConfigException or UsageException || e is StorageException { Error: StorageError.UnknownVolume })
        {
            await stderr.WriteLineAsync($"orleansdif scrub: {e.Message}");
            return CliApp.ExitUsage;
        }
        catch (Exception e) when (e is ConnectionException or TimeoutException or InvalidOperationException or StorageException or OrleansException)
        {
            await stderr.WriteLineAsync($"orleansdif scrub: {e.Message}");
            return CliApp.ExitFailed;
        }
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
