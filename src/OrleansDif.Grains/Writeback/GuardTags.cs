using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>Guard tags of a page for writeback: the cached ones where still valid, computed for the rest.</summary>
internal static class GuardTags
{
    /// <summary>
    /// Fills <paramref name="into"/> with one guard tag per sector of <paramref name="page"/>: the cached tag where
    /// bit s of <paramref name="valid"/> is set, the CRC of the sector as it is now otherwise. Returns how many
    /// were computed (the rest were reused).
    /// </summary>
    public static int Resolve(ReadOnlySpan<byte> page, ProtectionScheme scheme, ReadOnlySpan<ulong> cached, ulong valid, Span<ulong> into)
    {
        int computed = 0;
        int sectorSize = scheme.Format.DataSize;
        for (int s = 0; s < into.Length; s++)
        {
            if ((valid & (1UL << s)) != 0)
            {
                into[s] = cached[s];
            }
            else
            {
                into[s] = scheme.ComputeGuard(page.Slice(s * sectorSize, sectorSize));
                computed++;
            }
        }
        return computed;
    }
}

/// <summary>Counts of protection failures by check.</summary>
internal struct CheckCounts
{
    public long Guard;
    public long App;
    public long Ref;
    public long Version;

    public void Add(CheckKind check)
    {
        switch (check)
        {
            case CheckKind.Guard: Guard++; break;
            case CheckKind.App: App++; break;
            case CheckKind.Version: Version++; break;
            default: Ref++; break;
        }
    }
}
