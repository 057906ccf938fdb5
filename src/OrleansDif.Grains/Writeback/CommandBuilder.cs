using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// Builds the disk commands of writeback: the pages' data side by side, their PI tuples (guard tags reused from the
/// copy-in cache where the policy trusts it, computed elsewhere, counted), the version of each page in its application
/// tag. Plain: no Orleans types.
/// </summary>
public sealed class CommandBuilder(VolumeConfig config, IWritebackPolicy policy, ProtectionScheme scheme)
{
    private readonly ulong[] _tags = new ulong[config.SectorsPerPage];

    public long TagsComputed { get; private set; }
    public long TagsReused { get; private set; }
    public long BounceCopies { get; private set; }

    /// <summary>One command for <paramref name="pages"/>, contiguous from <paramref name="lba"/>.</summary>
    public DiskCommand Build(long lba, IReadOnlyList<WritebackSnapshot> pages)
    {
        int n = pages.Count;
        int spp = config.SectorsPerPage;
        int pagePi = spp * config.TupleSize;
        var command = new DiskCommand(lba, new byte[n * VolumeConfig.PageSize], new byte[n * pagePi], new long[n]);
        for (int i = 0; i < n; i++)
        {
            WritebackSnapshot s = pages[i];
            Span<byte> data = command.Data.AsSpan(i * VolumeConfig.PageSize, VolumeConfig.PageSize);
            s.Content.CopyTo(data);
            if (s.Copied)
            {
                BounceCopies++;
            }
            // Stable and bounce reuse the tags cached at copy-in where they are still valid. Unstable has no stable
            // pages to trust a cache with: it computes every tag from this read of the page.
            Tuples(data, s, policy.ReusesCachedTags ? s.ValidTags : 0, command.Pi.AsSpan(i * pagePi, pagePi), lba + (long)i * spp);
            command.Versions[i] = s.Version;
        }
        return command;
    }

    /// <summary>The guard tag written for each sector of page <paramref name="index"/> of <paramref name="command"/>.</summary>
    public ulong[] WrittenTags(DiskCommand command, int index)
    {
        int spp = config.SectorsPerPage;
        var tags = new ulong[spp];
        ReadOnlySpan<byte> pi = command.Pi.AsSpan(index * spp * config.TupleSize, spp * config.TupleSize);
        for (int s = 0; s < spp; s++)
        {
            tags[s] = scheme.GuardAt(pi, s);
        }
        return tags;
    }

    /// <summary>The PI tuples of a page handed over at eviction (its own tags where valid: the page is stable then).</summary>
    public byte[] EvictionTuples(WritebackSnapshot page, long lba)
    {
        byte[] pi = new byte[config.SectorsPerPage * config.TupleSize];
        Tuples(page.Content, page, page.ValidTags, pi, lba);
        return pi;
    }

    /// <summary>
    /// The pages of a command the disk rejected whose PI does not verify (the disk reports only the first failing
    /// sector): each one's index in the command.
    /// </summary>
    public IEnumerable<int> FailingPages(DiskCommand command)
    {
        int pagePi = config.SectorsPerPage * config.TupleSize;
        for (int i = 0; i < command.Pages; i++)
        {
            if (scheme.Verify(command.Data.AsSpan(i * VolumeConfig.PageSize, VolumeConfig.PageSize), command.Pi.AsSpan(i * pagePi, pagePi),
                    command.Lba + (long)i * config.SectorsPerPage) is not null)
            {
                yield return i;
            }
        }
    }

    private void Tuples(ReadOnlySpan<byte> content, WritebackSnapshot page, ulong validTags, Span<byte> pi, long lba)
    {
        int fresh = GuardTags.Resolve(content, scheme, page.Tags, validTags, _tags);
        TagsComputed += fresh;
        TagsReused += config.SectorsPerPage - fresh;
        DifMetrics.TagsComputed.Add(fresh);
        DifMetrics.TagsReused.Add(config.SectorsPerPage - fresh);
        scheme.WriteTuples(_tags, pi, lba, config.AppTagFor(page.Version));
    }
}
