using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using OrleansDif.Protection;

namespace OrleansDif.Cli.Tests;

/// <summary>
/// <c>orleansdif load --local</c> with real silo processes on loopback: three policies, one seeded workload,
/// then the JSON report and an offline scrub of every image the run wrote.
/// </summary>
[Collection(RealSilos.Name)]
public sealed class LoadEndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        int[] ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }

    internal static string WriteConfig(string dir, int pages = 16, int unstableDelayMs = 20)
    {
        int[] p = FreePorts(6);
        string path = Path.Combine(dir, "cluster.json");
        File.WriteAllText(path, $$"""
        {
          "clusterId": "e2e-{{Guid.NewGuid():N}}",
          "serviceId": "orleansdif-e2e",
          "dataDirectory": "data",
          "silos": [
            { "name": "s0", "address": "127.0.0.1", "siloPort": {{p[0]}}, "gatewayPort": {{p[1]}} },
            { "name": "s1", "address": "127.0.0.1", "siloPort": {{p[2]}}, "gatewayPort": {{p[3]}} },
            { "name": "s2", "address": "127.0.0.1", "siloPort": {{p[4]}}, "gatewayPort": {{p[5]}} }
          ],
          "volumes": [
            { "id": "e2e", "pages": {{pages}}, "disks": 2, "stripePages": 4, "dirtyAgeMs": 20, "unstableDelayMs": {{unstableDelayMs}} }
          ]
        }
        """);
        return path;
    }

    [Fact]
    public async Task CompareRunsThreePoliciesOnRealSilosAndVerifiesEveryByte()
    {
        string config = WriteConfig(_dir);
        string json = Path.Combine(_dir, "report.json");
        string chart = Path.Combine(_dir, "report.png");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--compare",
            "--pages", "16", "--writers", "8", "--duration", "3s", "--mix", "write=80,store=10,read=10",
            "--fsync-every", "50", "--seed", "7", "--warmup", "1s", "--rounds", "1", "--json", json, "--chart", chart);
        string siloLog = Path.Combine(_dir, "data", "silos.log");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}\nsilo output:\n{(File.Exists(siloLog) ? File.ReadAllText(siloLog) : "(none)")}");
        byte[] png = File.ReadAllBytes(chart);
        Assert.True(png.Length > 1000 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', "the chart is a PNG");
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        var reports = doc.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("policy").GetString()!);
        Assert.Equal(["bounce", "stable", "unstable"], reports.Keys.Order());
        foreach (var (policy, r) in reports)
        {
            Assert.Equal(3, r.GetProperty("silos").GetInt32());
            Assert.Equal("mixed", r.GetProperty("workload").GetString());
            JsonElement verify = r.GetProperty("verify");
            Assert.True(verify.GetProperty("pages").GetInt32() > 0, policy);
            Assert.Equal(0, verify.GetProperty("mismatched").GetInt32());
            Assert.Equal(0, verify.GetProperty("lost").GetInt32());
            Assert.True(r.GetProperty("ops").GetProperty("write").GetInt64() > 0);
            Assert.True(r.GetProperty("writeback").GetProperty("pages").GetInt64() > 0);
            foreach (string key in new[] { "durationSeconds", "opsPerSecond", "mbPerSecond" })
            {
                Assert.True(r.GetProperty(key).GetDouble() > 0, key);
            }
            foreach (string kind in new[] { "write", "store", "read", "fsync" })
            {
                JsonElement l = r.GetProperty("latencyMs").GetProperty(kind);
                Assert.True(l.GetProperty("p50").GetDouble() <= l.GetProperty("p99").GetDouble(), kind);
                Assert.True(l.GetProperty("p99").GetDouble() <= l.GetProperty("max").GetDouble(), kind);
            }
            _ = r.GetProperty("stallMs").GetProperty("p99").GetDouble();
            _ = r.GetProperty("writeback").GetProperty("ioLatencyMs").GetProperty("p50").GetDouble();
            _ = r.GetProperty("disk").GetProperty("sectorsWritten").GetInt64();
            Assert.Equal(2, r.GetProperty("images").GetArrayLength());
            // Durability is paid in group commits: at most one intent commit per page activation and one epoch
            // reservation per disk activation, never one per write; flushes only for fsyncs: each fsync flushes each
            // of the 2 disks behind its writeback batch there, and once more when pages it waits for were written
            // back meanwhile by another batch (a writeback already under way, a page that was busy).
            JsonElement d = r.GetProperty("durability");
            long commits = d.GetProperty("metadataCommits").GetInt64();
            Assert.InRange(commits, 1, 16 + 2);
            long flushes = d.GetProperty("diskFlushes").GetInt64();
            Assert.InRange(flushes, 1, r.GetProperty("ops").GetProperty("fsync").GetInt64() * 2 * 2);
            Assert.True(flushes * 5 < r.GetProperty("ops").GetProperty("write").GetInt64(), $"{flushes} flushes for {r.GetProperty("ops")}");
            Assert.Equal(0, d.GetProperty("staleCommands").GetInt64());
        }
        long Guard(string p) => reports[p].GetProperty("disk").GetProperty("rejected").GetProperty("guard").GetInt64();
        Assert.Equal(0, Guard("stable"));
        Assert.Equal(0, Guard("bounce"));
        Assert.True(Guard("unstable") > 0, "unstable writeback with concurrent writers must show guard rejections");
        Assert.True(reports["bounce"].GetProperty("writeback").GetProperty("bounceCopies").GetInt64() > 0);
        Assert.True(reports["stable"].GetProperty("writeback").GetProperty("crcReused").GetInt64() > 0);

        // The silos are gone; every image they wrote passes an offline scrub.
        string[] images = reports.Values.SelectMany(r => r.GetProperty("images").EnumerateArray().Select(i => i.GetString()!)).ToArray();
        Assert.Equal(6, images.Length);
        foreach (string image in images)
        {
            var (scrubExit, scrubOut, _) = await CliRunner.RunAsync("scrub", image, "--json");
            Assert.True(scrubExit == 0, scrubOut);
            Assert.True(Scrubber.Scrub(image).Clean);
        }
    }

    [Fact]
    public async Task MemoryFlipsRightAfterStoresAreAllCaughtWithStoreTagsAndMostGoSilentWithout()
    {
        // Pages changed mostly through mappings, a bit flipped in the page just stored every 10 writes.
        async Task<JsonElement> Run(bool storeTags, string name)
        {
            string dir = Directory.CreateDirectory(Path.Combine(_dir, name)).FullName; // a cluster and volume of its own
            string config = WriteConfig(dir, pages: 64);
            string json = Path.Combine(dir, "faults.json");
            var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "faultInjection=true",
                "--set", $"volumes:0:storeTags={storeTags.ToString().ToLowerInvariant()}", "--policy", "stable", "--pages", "64",
                "--writers", "4", "--duration", "3s", "--mix", "write=10,store=80,read=10", "--inject", "page-bitflip",
                "--inject-every", "10", "--seed", "3", "--json", json);
            Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
            Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
            return doc.RootElement.GetProperty("faults").GetProperty("page-bitflip").Clone();
        }
        JsonElement tagged = await Run(storeTags: true, "tagged");
        Assert.True(tagged.GetProperty("injected").GetInt32() >= 16, tagged.ToString());
        Assert.True(tagged.GetProperty("silent").GetInt32() == 0, tagged.ToString());
        Assert.Equal(tagged.GetProperty("injected").GetInt32(), tagged.GetProperty("detected").GetInt32() + tagged.GetProperty("masked").GetInt32());
        // As Linux leaves a mapping (writable, untagged until writeback), a flip right after a store is written back
        // under a fresh, valid tag and only the read-back finds it: the window the setting closes.
        JsonElement untagged = await Run(storeTags: false, "untagged");
        Assert.True(untagged.GetProperty("silent").GetInt32() > 0, untagged.ToString());
    }

    [Fact]
    public async Task InjectedFaultsAreAttributedAndNoneGoesSilentWithVersionTags()
    {
        string config = WriteConfig(_dir, pages: 48);
        string json = Path.Combine(_dir, "faults.json");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "faultInjection=true",
            "--policy", "stable", "--pages", "32", "--writers", "4", "--duration", "3s", "--mix", "write=90,read=10",
            "--inject", "transit-bitflip,media-bitrot,misdirected-write,torn-write,lost-write", "--inject-every", "10",
            "--seed", "3", "--json", json);
        string siloLog = Path.Combine(_dir, "data", "silos.log");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}\nsilo output:\n{(File.Exists(siloLog) ? File.ReadAllText(siloLog) : "(none)")}");
        Assert.Contains("faults detected / applied", stdout);
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        JsonElement faults = doc.RootElement.GetProperty("faults");
        foreach (string kind in new[] { "transit-bitflip", "media-bitrot", "misdirected-write", "torn-write", "lost-write" })
        {
            JsonElement f = faults.GetProperty(kind);
            int injected = f.GetProperty("injected").GetInt32();
            Assert.Equal(injected, f.GetProperty("detected").GetInt32() + f.GetProperty("silent").GetInt32() + f.GetProperty("masked").GetInt32());
            // Guard, reference and version tags between them: nothing goes to the medium wrong unnoticed.
            Assert.True(f.GetProperty("silent").GetInt32() == 0, $"{kind}: {f}");
        }
        // Data in flight always fails its guard; rot at rest is always read back.
        foreach (string kind in new[] { "transit-bitflip", "media-bitrot" })
        {
            JsonElement f = faults.GetProperty(kind);
            Assert.True(f.GetProperty("injected").GetInt32() > 0, kind);
            Assert.Equal(f.GetProperty("injected").GetInt32(), f.GetProperty("detected").GetInt32());
        }
        Assert.Equal(0, doc.RootElement.GetProperty("verify").GetProperty("lost").GetInt32());
        Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
    }

    [Fact]
    public async Task OnAMirroredVolumeEveryDiskFaultIsRepairedFromAGoodCopy()
    {
        string config = WriteConfig(_dir, pages: 48);
        string json = Path.Combine(_dir, "mirrored.json");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "faultInjection=true",
            "--set", "volumes:0:mirrors=2", "--policy", "stable", "--pages", "32", "--writers", "4", "--duration", "3s",
            "--mix", "write=90,read=10", "--inject", "media-bitrot,misdirected-write,torn-write,lost-write", "--inject-every", "10",
            "--seed", "5", "--json", json);
        string siloLog = Path.Combine(_dir, "data", "silos.log");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}\nsilo output:\n{(File.Exists(siloLog) ? File.ReadAllText(siloLog) : "(none)")}");
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        JsonElement faults = doc.RootElement.GetProperty("faults");
        foreach (string kind in new[] { "media-bitrot", "misdirected-write", "torn-write", "lost-write" })
        {
            JsonElement f = faults.GetProperty(kind);
            Assert.True(f.GetProperty("silent").GetInt32() == 0, $"{kind}: {f}");
            // Whatever a check met, a good copy mended: one copy of each sector is left alone by the faults.
            Assert.True(f.GetProperty("repaired").GetInt32() == f.GetProperty("detected").GetInt32(), $"{kind}: {f}");
        }
        JsonElement rot = faults.GetProperty("media-bitrot");
        Assert.True(rot.GetProperty("injected").GetInt32() > 0);
        Assert.Equal(rot.GetProperty("injected").GetInt32(), rot.GetProperty("repaired").GetInt32());
        JsonElement mirror = doc.RootElement.GetProperty("mirror");
        Assert.Equal(2, mirror.GetProperty("copies").GetInt32());
        Assert.Equal(0, mirror.GetProperty("unrepairable").GetInt64());
        Assert.True(mirror.GetProperty("repaired").GetInt64() >= rot.GetProperty("injected").GetInt32(), mirror.ToString());
        Assert.Equal(0, doc.RootElement.GetProperty("verify").GetProperty("integrityErrors").GetInt32()); // every read served good data
        Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
        Assert.Contains("mirror: repaired / resynced", stdout);
    }

    [Fact]
    public async Task ScrubOfALiveMirroredVolumeMendsACopyThatRottedWhileTheClusterWasDown()
    {
        string config = WriteConfig(_dir);
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "volumes:0:mirrors=2",
            "--pages", "16", "--writers", "2", "--duration", "1s", "--mix", "write=100");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        // Page 0 lives at LBA 0 of disk 0: rot one data bit of it in the copy's image, with every silo stopped.
        string copy = Path.Combine(_dir, "data", "e2e-stable.disk0.copy1.img");
        using (DiskImage image = DiskImage.Open(copy, writable: true))
        {
            byte[] raw = new byte[image.Format.BlockSize];
            image.ReadRaw(0, raw);
            Assert.NotEqual(0xFFFF, (raw[image.Format.DataSize + 2] << 8) | raw[image.Format.DataSize + 3]); // written, not escaped
            raw[100] ^= 0x10;
            image.WriteRaw(0, raw);
            image.Flush();
        }
        Assert.False(Scrubber.Scrub(copy).Clean);

        (exit, stdout, stderr) = await CliRunner.RunAsync("scrub", "--volume", "e2e-stable", "--local", "--config", config, "--json");
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        using JsonDocument doc = JsonDocument.Parse(stdout);
        Assert.Equal(2, doc.RootElement.GetProperty("mirrors").GetInt32());
        Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
        JsonElement[] disks = [.. doc.RootElement.GetProperty("disks").EnumerateArray()];
        Assert.Equal(2, disks.Length);
        Assert.Equal(1, disks.Sum(d => d.GetProperty("repaired").GetInt64()));
        Assert.All(disks, d => Assert.Equal(0, d.GetProperty("unrepairable").GetInt64()));
        Assert.True(Scrubber.Scrub(copy).Clean); // rewritten from the disk, and flushed

        (exit, _, stderr) = await CliRunner.RunAsync("scrub", "--config", config);
        Assert.Equal(2, exit);
        Assert.Contains("give an IMAGE, or --volume", stderr);
        (exit, _, stderr) = await CliRunner.RunAsync("scrub", copy, "--volume", "e2e-stable", "--config", config);
        Assert.Equal(2, exit);
    }

    [Fact]
    public async Task AVolumeWithSixtyFourBitGuardsRunsEveryPolicyAndItsImagesScrubClean()
    {
        string config = WriteConfig(_dir);
        string json = Path.Combine(_dir, "crc64.json");
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--set", "volumes:0:guard=crc64",
            "--compare", "--rounds", "1", "--warmup", "0s", "--pages", "16", "--writers", "4", "--duration", "2s", "--json", json);
        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        foreach (JsonElement run in doc.RootElement.EnumerateArray())
        {
            Assert.True(run.GetProperty("passed").GetBoolean());
            Assert.Equal(0, run.GetProperty("verify").GetProperty("mismatched").GetInt32());
            if (run.GetProperty("policy").GetString() != "unstable")
            {
                Assert.Equal(0, run.GetProperty("disk").GetProperty("rejected").GetProperty("guard").GetInt64());
            }
            foreach (JsonElement image in run.GetProperty("images").EnumerateArray())
            {
                string path = image.GetString()!;
                Assert.Equal("crc64", DiskImageInfo.TryLoad(path)!.Guard);
                Assert.True(Scrubber.Scrub(path).Clean, path);
            }
        }
    }

    [Fact]
    public async Task InjectWithFaultInjectionDisabledIsAUsageError()
    {
        string config = WriteConfig(_dir);
        var (exit, _, stderr) = await CliRunner.RunAsync("load", "--local", "--config", config, "--inject", "lost-write", "--duration", "1s");
        Assert.Equal(2, exit);
        Assert.Contains("fault injection is disabled", stderr);
        Assert.False(File.Exists(Path.Combine(_dir, "data", "silos.log")), "no silo was started");
    }

    [Fact]
    public async Task NoRunningClusterIsAClearErrorNotAStackTrace()
    {
        string config = WriteConfig(_dir);
        // No silo is running on these ports: a clear message, not a stack trace.
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", "--config", config, "--duration", "1s");
        Assert.Equal(1, exit);
        Assert.Contains("could not connect", stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.DoesNotContain("   at ", stdout);
    }
}
