using System.Text.Json;
using Microsoft.Extensions.Options;

namespace OrleansDif.Grains;

/// <summary>A volume's definition, persisted as JSON in the data directory so it survives restarts.</summary>
public sealed class VolumeGrain(IOptions<StorageOptions> options) : Grain, IVolumeGrain
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };
    private VolumeConfig? _config;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        string path = options.Value.VolumePath(this.GetPrimaryKeyString());
        if (File.Exists(path))
        {
            _config = JsonSerializer.Deserialize<VolumeConfig>(File.ReadAllText(path), s_json);
        }
        return Task.CompletedTask;
    }

    public async Task Create(VolumeConfig config)
    {
        config.Validate();
        if (config.Id != this.GetPrimaryKeyString())
        {
            throw new StorageException(StorageError.InvalidConfig,
                $"volume field 'id': '{config.Id}' does not match grain '{this.GetPrimaryKeyString()}'");
        }
        if (_config is not null)
        {
            if (_config != config)
            {
                throw new StorageException(StorageError.VolumeExists, $"volume '{config.Id}' exists with another configuration");
            }
            return;
        }
        // Format every disk first: a volume is only recorded once its disks exist.
        await Task.WhenAll(Enumerable.Range(0, config.Disks).Select(d => GrainFactory.Disk(config.Id, d).Format(config, d)));
        string path = options.Value.VolumePath(config.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string tmp = path + ".tmp";
        await File.WriteAllTextAsync(tmp, JsonSerializer.Serialize(config, s_json));
        File.Move(tmp, path, overwrite: true);
        _config = config;
    }

    public Task<VolumeConfig> GetConfig() => _config is not null
        ? Task.FromResult(_config)
        : throw new StorageException(StorageError.UnknownVolume, $"volume '{this.GetPrimaryKeyString()}' does not exist");
}
