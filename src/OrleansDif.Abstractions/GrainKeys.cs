namespace OrleansDif;

/// <summary>
/// The one place grain keys are built and read: a volume's grains are keyed by its id (volume, flusher) or by
/// "volume/number" (page, disk). Silos, clients and tests all reach grains through these.
/// </summary>
public static class GrainKeys
{
    public static string Of(string volume, int number) => $"{volume}/{number}";

    public static IVolumeGrain Volume(this IGrainFactory factory, string volume) => factory.GetGrain<IVolumeGrain>(volume);

    public static IWritebackGrain Flusher(this IGrainFactory factory, string volume) => factory.GetGrain<IWritebackGrain>(volume);

    public static IPageGrain Page(this IGrainFactory factory, string volume, int page) => factory.GetGrain<IPageGrain>(Of(volume, page));

    public static IDiskGrain Disk(this IGrainFactory factory, string volume, int disk) => factory.GetGrain<IDiskGrain>(Of(volume, disk));

    /// <summary>Splits a "volume/number" key.</summary>
    public static (string Volume, int Number) Parse(string key)
    {
        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), out int n))
        {
            throw new StorageException(StorageError.OutOfRange, $"grain key '{key}' is not 'volume/number'");
        }
        return (key[..slash], n);
    }
}
