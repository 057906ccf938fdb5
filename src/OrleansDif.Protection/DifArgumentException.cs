namespace OrleansDif.Protection;

/// <summary>The kind of bad input a protection-information operation refused.</summary>
public enum DifError
{
    /// <summary>Sector size, PI type or sector count is not one this library supports.</summary>
    BadGeometry,
    /// <summary>A data buffer is not a whole number of sectors.</summary>
    NotWholeSectors,
    /// <summary>The PI buffer does not hold exactly one tuple per sector.</summary>
    PiCountMismatch,
    /// <summary>A buffer is empty where data is required.</summary>
    EmptyBuffer,
    /// <summary>A destination buffer is smaller than the data to put in it.</summary>
    BufferTooSmall,
    /// <summary>Source and destination buffers overlap.</summary>
    OverlappingBuffers,
    /// <summary>An LBA, offset or length lies outside the device or buffer.</summary>
    OutOfRange,
    /// <summary>A disk image's length is not a whole number of sectors, or shorter than its sidecar says.</summary>
    TruncatedImage,
    /// <summary>A disk image or its sidecar is missing or unreadable.</summary>
    BadImage,
}

/// <summary>Bad input to a protection-information operation. Nothing was changed.</summary>
public sealed class DifArgumentException : ArgumentException
{
    public DifArgumentException(DifError error, string message)
        : base(message)
    {
        Error = error;
    }

    public DifError Error { get; }
}
