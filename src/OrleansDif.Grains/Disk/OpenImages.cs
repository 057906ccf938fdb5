using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>
/// The disk images a silo has open. Disposed with the silo's services, so a silo that is torn down releases its
/// images' writer locks as a process that dies does, even when it shares its process with other silos (tests).
/// </summary>
public sealed class OpenImages : IDisposable
{
    private readonly HashSet<DiskImage> _images = [];

    public DiskImage Track(DiskImage image)
    {
        lock (_images)
        {
            _images.Add(image);
        }
        return image;
    }

    public void Release(DiskImage image)
    {
        lock (_images)
        {
            _images.Remove(image);
        }
        image.Dispose();
    }

    public void Dispose()
    {
        DiskImage[] all;
        lock (_images)
        {
            all = [.. _images];
            _images.Clear();
        }
        foreach (DiskImage image in all)
        {
            image.Dispose();
        }
    }
}
