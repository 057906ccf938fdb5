using System.Diagnostics;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using OrleansDif.Protection;

namespace OrleansDif.Cli;

/// <summary>
/// Guard-tag throughput in one run over the same buffers: our kernel, the fused copy, a plain copy, the
/// System.IO.Hashing CRC-32 parameter set, and ISA-L from Debian's libisal2 when it is installed.
/// Rounds are interleaved so that machine noise hits every contender alike; the median round is reported.
/// </summary>
public static unsafe class CrcBenchmark
{
    private const string IsalLibrary = "libisal.so.2";
    private const int Pages = 256;           // 1 MiB working set: in cache, like a page being written
    private const int PageSize = 4096;

    public sealed record Result(string Kernel, IReadOnlyDictionary<string, double?> GBps, int Rounds);

    public static readonly string[] Keys = ["guard4k", "guard512", "copyGuard4k", "copy4k", "sioh4k", "isal4k", "isalCopy4k", "crc64guard4k", "crc64copyGuard4k", "sioh64_4k", "isalCrc64_4k"];

    [DllImport(IsalLibrary, EntryPoint = "crc16_t10dif")]
    [SuppressGCTransition]
    private static extern ushort IsalCrc(ushort init, byte* buffer, ulong length);

    [DllImport(IsalLibrary, EntryPoint = "crc16_t10dif_copy")]
    [SuppressGCTransition]
    private static extern ushort IsalCrcCopy(ushort init, byte* destination, byte* source, ulong length);

    /// <summary>ISA-L's reflected 64-bit CRC (Jones polynomial): Debian's ISA-L 2.30 has no NVMe one; the same shape of work.</summary>
    [DllImport(IsalLibrary, EntryPoint = "crc64_jones_refl")]
    [SuppressGCTransition]
    private static extern ulong IsalCrc64(ulong init, byte* buffer, ulong length);

    public static bool IsalAvailable()
    {
        if (!NativeLibrary.TryLoad(IsalLibrary, out IntPtr handle))
        {
            return false;
        }
        NativeLibrary.Free(handle);
        return true;
    }

    /// <summary>
    /// Kept out of <see cref="Run"/>: a call with SuppressGCTransition is bound when its caller is compiled, so a
    /// direct call there fails without the library even when the branch that makes it is never taken.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static ushort IsalPage(byte* page) => IsalCrc(0, page, PageSize);

    public static Result Run(int rounds = 9, double secondsPerMeasure = 0.08)
    {
        byte[] src = GC.AllocateArray<byte>(Pages * PageSize, pinned: true);
        byte[] dst = GC.AllocateArray<byte>(Pages * PageSize, pinned: true);
        new Random(2010).NextBytes(src);
        bool isal = IsalAvailable();
        var sioh = new Crc32(Crc32ParameterSet.Create(0x8BB70000, 0, 0, false));
        CrcKernel kernel = Crc16T10Dif.BestKernel;

        fixed (byte* s = src)
        fixed (byte* d = dst)
        {
            byte* sp = s;
            byte* dp = d;
            if (isal)
            {
                ushort ours = Crc16T10Dif.Compute(src.AsSpan(0, PageSize));
                ushort theirs = IsalPage(sp);
                if (ours != theirs)
                {
                    throw new InvalidOperationException($"ISA-L disagrees: 0x{theirs:X4} vs ours 0x{ours:X4}");
                }
            }
            var measures = new List<(string Key, Func<int> Pass)>
            {
                ("guard4k", () => { int x = 0; for (int p = 0; p < Pages; p++) x ^= Crc16T10Dif.Compute(src.AsSpan(p * PageSize, PageSize), kernel); return x; }),
                ("guard512", () => { int x = 0; for (int p = 0; p < Pages * 8; p++) x ^= Crc16T10Dif.Compute(src.AsSpan(p * 512, 512), kernel); return x; }),
                ("copyGuard4k", () => { int x = 0; for (int p = 0; p < Pages; p++) x ^= Crc16T10Dif.CopyAndCompute(src.AsSpan(p * PageSize, PageSize), dst.AsSpan(p * PageSize, PageSize), kernel); return x; }),
                ("copy4k", () => { for (int p = 0; p < Pages; p++) src.AsSpan(p * PageSize, PageSize).CopyTo(dst.AsSpan(p * PageSize, PageSize)); return dst[PageSize - 1]; }),
                ("crc64guard4k", () => { ulong x = 0; for (int p = 0; p < Pages; p++) x ^= Crc64Nvme.Compute(src.AsSpan(p * PageSize, PageSize)); return (int)x; }),
                ("crc64copyGuard4k", () => { ulong x = 0; for (int p = 0; p < Pages; p++) x ^= Crc64Nvme.CopyAndCompute(src.AsSpan(p * PageSize, PageSize), dst.AsSpan(p * PageSize, PageSize)); return (int)x; }),
                ("sioh64_4k", () => { ulong x = 0; for (int p = 0; p < Pages; p++) x ^= Crc64.HashToUInt64(Crc64ParameterSet.Nvme, src.AsSpan(p * PageSize, PageSize)); return (int)x; }),
                ("sioh4k", () => { int x = 0; for (int p = 0; p < Pages; p++) { sioh.Reset(); sioh.Append(src.AsSpan(p * PageSize, PageSize)); x ^= (int)(sioh.GetCurrentHashAsUInt32() >> 16); } return x; }),
            };
            if (isal)
            {
                measures.Add(("isal4k", () => { int x = 0; for (int p = 0; p < Pages; p++) x ^= IsalCrc(0, sp + p * PageSize, PageSize); return x; }));
                measures.Add(("isalCrc64_4k", () => { ulong x = 0; for (int p = 0; p < Pages; p++) x ^= IsalCrc64(0, sp + p * PageSize, PageSize); return (int)x; }));
                measures.Add(("isalCopy4k", () => { int x = 0; for (int p = 0; p < Pages; p++) x ^= IsalCrcCopy(0, dp + p * PageSize, sp + p * PageSize, PageSize); return x; }));
            }

            var samples = measures.ToDictionary(m => m.Key, _ => new List<double>());
            int sink = 0;
            foreach (var m in measures)
            {
                for (int i = 0; i < 20; i++)
                {
                    sink ^= m.Pass(); // warm-up: tier-up and caches
                }
            }
            double bytesPerPass = (double)Pages * PageSize;
            for (int r = 0; r < rounds; r++)
            {
                foreach (var m in measures)
                {
                    long passes = 0;
                    var sw = Stopwatch.StartNew();
                    do
                    {
                        sink ^= m.Pass();
                        passes++;
                    }
                    while (sw.Elapsed.TotalSeconds < secondsPerMeasure);
                    samples[m.Key].Add(passes * bytesPerPass / sw.Elapsed.TotalSeconds / 1e9);
                }
            }
            GC.KeepAlive(sink);
            var result = new Dictionary<string, double?>();
            foreach (string key in Keys)
            {
                result[key] = samples.TryGetValue(key, out var list) ? Median(list) : null;
            }
            return new Result(kernel.ToString(), result, rounds);
        }
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        int n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
