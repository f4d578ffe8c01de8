using Microsoft.Extensions.Options;

namespace DBSync.Hosting.Internal;

/// <summary>Validates <see cref="DBSyncOptions"/> at the host's start with the options' own rules
/// (<see cref="DBSyncOptions.Validate"/>), naming the configuration key when the options came from configuration.</summary>
internal sealed class DBSyncOptionsValidation(string? configurationPath) : IValidateOptions<DBSyncOptions>
{
    public ValidateOptionsResult Validate(string? name, DBSyncOptions options)
    {
        if (name is not null && name != Options.DefaultName)
            return ValidateOptionsResult.Skip;
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
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
    }
}
