using System.Collections.Concurrent;

namespace OrleansDif.LoadGenerator;

/// <summary>
/// The client's own model of the acknowledged writes: per page the content it had when the run began and every
/// acknowledged write or store with the version the page grain gave it. The expected content of a page is the
/// base with the writes applied in version order, which is the order the page applied them in.
/// </summary>
public sealed class ContentModel
{
    private readonly ConcurrentDictionary<int, byte[]> _base = new();
    private readonly ConcurrentDictionary<int, List<(long Version, int Offset, byte[] Data)>> _writes = new();

    public void SetBase(int page, byte[] content)
    {
        if (content.Length != VolumeConfig.PageSize)
        {
            throw new ArgumentException($"page content must be {VolumeConfig.PageSize} bytes", nameof(content));
        }
        _base[page] = content;
    }

    /// <summary>Records an acknowledged write. Two writes with one version on one page is a broken page grain.</summary>
    public void Acknowledge(int page, long version, int offset, byte[] data)
    {
        if (offset < 0 || data.Length == 0 || offset + data.Length > VolumeConfig.PageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"write of {data.Length} bytes at {offset} is outside a page");
        }
        List<(long, int, byte[])> list = _writes.GetOrAdd(page, _ => []);
        lock (list)
        {
            list.Add((version, offset, data));
        }
    }

    public IEnumerable<int> TouchedPages => _writes.Keys.OrderBy(p => p);

    public int AcknowledgedWrites => _writes.Values.Sum(l => { lock (l) { return l.Count; } });

    /// <summary>The content page <paramref name="page"/> must have once every acknowledged write is applied.</summary>
    public byte[] Expected(int page)
    {
        byte[] content = _base.TryGetValue(page, out byte[]? b) ? (byte[])b.Clone() : new byte[VolumeConfig.PageSize];
        if (_writes.TryGetValue(page, out var list))
        {
            (long Version, int Offset, byte[] Data)[] ordered;
            lock (list)
            {
                ordered = list.OrderBy(w => w.Version).ToArray();
            }
            for (int i = 1; i < ordered.Length; i++)
            {
                if (ordered[i].Version == ordered[i - 1].Version)
                {
                    throw new InvalidOperationException($"page {page}: two acknowledged writes carry version {ordered[i].Version}");
                }
            }
            foreach (var w in ordered)
            {
                w.Data.CopyTo(content, w.Offset);
            }
        }
        return content;
    }
}
