using System.Collections.Concurrent;

namespace OrleansDif.LoadGenerator;

/// <summary>
/// The client's own model of the acknowledged writes. Per page: the content and version it had when the run
/// began, then every acknowledged write or store with the version the page grain gave it. A page bumps its
/// version by one per applied write, so writes are folded into the content as soon as the versions before
/// them are known (memory stays flat however long the run); out-of-order acknowledgements wait in a small
/// pending set. The expected content is the base with every write applied in version order.
/// </summary>
public sealed class ContentModel
{
    private readonly ConcurrentDictionary<int, PageModel> _pages = new();

    private sealed class PageModel
    {
        public byte[] Content = new byte[VolumeConfig.PageSize];
        public long Applied;
        public readonly SortedDictionary<long, (int Offset, byte[] Data)> Pending = [];
        public int Acknowledged;
    }

    /// <summary>The page's content and version before the run.</summary>
    public void SetBase(int page, byte[] content, long version)
    {
        if (content.Length != VolumeConfig.PageSize)
        {
            throw new ArgumentException($"page content must be {VolumeConfig.PageSize} bytes", nameof(content));
        }
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            model.Content = (byte[])content.Clone();
            model.Applied = version;
        }
    }

    /// <summary>Records an acknowledged write. Two writes with one version on one page is a broken page grain.</summary>
    public void Acknowledge(int page, long version, int offset, byte[] data)
    {
        if (offset < 0 || data.Length == 0 || offset + data.Length > VolumeConfig.PageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"write of {data.Length} bytes at {offset} is outside a page");
        }
        PageModel model = _pages.GetOrAdd(page, _ => new PageModel());
        lock (model)
        {
            if (version <= model.Applied || !model.Pending.TryAdd(version, (offset, data)))
            {
                throw new InvalidOperationException($"page {page}: version {version} acknowledged twice");
            }
            model.Acknowledged++;
            while (model.Pending.Remove(model.Applied + 1, out var next))
            {
                next.Data.CopyTo(model.Content, next.Offset);
                model.Applied++;
            }
        }
    }

    public IEnumerable<int> TouchedPages => _pages.Where(kv => kv.Value.Acknowledged > 0).Select(kv => kv.Key).OrderBy(p => p);

    public int AcknowledgedWrites => _pages.Values.Sum(m => { lock (m) { return m.Acknowledged; } });

    /// <summary>Writes still waiting for an earlier version (a write whose acknowledgement never came leaves a gap).</summary>
    public int PendingWrites => _pages.Values.Sum(m => { lock (m) { return m.Pending.Count; } });

    /// <summary>The content page <paramref name="page"/> must have once every acknowledged write is applied.</summary>
    public byte[] Expected(int page)
    {
        if (!_pages.TryGetValue(page, out PageModel? model))
        {
            return new byte[VolumeConfig.PageSize];
        }
        lock (model)
        {
            byte[] content = (byte[])model.Content.Clone();
            foreach (var (offset, data) in model.Pending.Values)
            {
                data.CopyTo(content, offset);
            }
            return content;
        }
    }
}
