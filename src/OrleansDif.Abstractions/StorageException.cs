namespace OrleansDif;

/// <summary>What kind of bad request a grain refused.</summary>
public enum StorageError
{
    InvalidConfig,
    UnknownVolume,
    VolumeExists,
    OutOfRange,
    EmptyBuffer,
    BufferTooLarge,
    PiCountMismatch,
    NotWholeSectors,
    UnknownMapping,
    ReadOnlyMapping,
    /// <summary>Stored data failed its protection check when read: never returned as good data.</summary>
    IntegrityError,
    FaultInjectionDisabled,
}

/// <summary>A refused request. The grain's state did not change.</summary>
[GenerateSerializer]
public sealed class StorageException : Exception
{
    public StorageException(StorageError error, string message, ProtectionFailure? failure = null)
        : base($"{error}: {message}")
    {
        Error = error;
        Failure = failure;
    }

    [Id(0)]
    public StorageError Error { get; private set; }

    /// <summary>For <see cref="StorageError.IntegrityError"/>: the sector and check that failed.</summary>
    [Id(1)]
    public ProtectionFailure? Failure { get; private set; }
}
