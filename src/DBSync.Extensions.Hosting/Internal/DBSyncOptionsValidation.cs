using Microsoft.Extensions.Options;

namespace DBSync.Hosting.Internal;

/// <summary>Validates <see cref="DBSyncOptions"/> at the host's start with the options' own rules
/// (<see cref="DBSyncOptions.Validate"/>), and against the builder's handlers (a schema change handler needs
/// <see cref="DBSyncOptions.CaptureSchemaChanges"/>), naming the configuration key when the options came from configuration.</summary>
internal sealed class DBSyncOptionsValidation(string? configurationPath, DBSyncRegistrations registrations) : IValidateOptions<DBSyncOptions>
{
    public ValidateOptionsResult Validate(string? name, DBSyncOptions options)
    {
        if (name is not null && name != Options.DefaultName)
            return ValidateOptionsResult.Skip;
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            // The message names the option and the fix; ArgumentException appends " (Parameter 'X')", which the key replaces.
            var message = e.ParamName is { } option && e.Message.EndsWith($" (Parameter '{option}')", StringComparison.Ordinal)
                ? e.Message[..^$" (Parameter '{option}')".Length]
                : e.Message;
            return ValidateOptionsResult.Fail(configurationPath is null || e.ParamName is null
                ? message
                : $"{message} (configuration key '{configurationPath}:{e.ParamName}')");
        }
        // DBSyncClient.OnSchemaChange would refuse the handlers when the container creates the client; said here, the
        // host's start fails as for any other option, with the configuration key.
        if (!options.CaptureSchemaChanges && registrations.SchemaChangeHandlers.Count > 0)
        {
            var handlers = string.Join(", ", registrations.SchemaChangeHandlers.Select(h => $"AddSchemaChangeHandler<{h.Name}>()"));
            var message = $"DBSyncOptions.CaptureSchemaChanges is false, but schema change handlers are registered ({handlers}): set it to true " +
                "(without the DDL capture trigger the stream carries no DDL).";
            return ValidateOptionsResult.Fail(configurationPath is null
                ? message
                : $"{message} (configuration key '{configurationPath}:{nameof(DBSyncOptions.CaptureSchemaChanges)}')");
        }
        return ValidateOptionsResult.Success;
    }
}
