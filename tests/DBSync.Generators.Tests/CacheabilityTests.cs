using System.Collections;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace DBSync.Generators.Tests;

public sealed class CacheabilityTests
{
    private static readonly string[] s_trackedSteps = [TrackingNames.Parse, TrackingNames.Entities, TrackingNames.Diagnostics];

    [Fact]
    public void UnrelatedEdit_LeavesEveryTrackedStepCachedOrUnchanged()
    {
        // One faulty entity too, so the Diagnostics step has something to cache.
        var compilation = GeneratorHarness.Compile(GeneratorHarness.SeedEntities, GeneratorHarness.TypeRowEntity,
            "using DBSync; [SyncTable(\"bad\")] public partial class Keyless { public int Id { get; set; } }");
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText(
            "namespace Elsewhere; public static class Unrelated { public static int Answer => 42; }",
            (CSharpParseOptions)compilation.SyntaxTrees.First().Options));
        var second = driver.RunGenerators(edited).GetRunResult().Results.Single();

        foreach (var step in s_trackedSteps)
        {
            Assert.True(first.TrackedSteps.ContainsKey(step), $"step {step} is not tracked");
            var outputs = second.TrackedSteps[step].SelectMany(s => s.Outputs).ToList();
            Assert.All(outputs, o => Assert.True(o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"step {step} re-ran with reason {o.Reason}"));
        }
        Assert.All(second.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
            o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Fact]
    public void PipelineValues_HoldNoSymbolsSyntaxOrCompilation()
    {
        var driver = GeneratorHarness.CreateDriver().RunGenerators(GeneratorHarness.Compile(GeneratorHarness.SeedEntities, GeneratorHarness.TypeRowEntity,
            "using DBSync; [SyncTable(\"bad\")] public partial class Keyless { public int Id { get; set; } }"));
        var result = driver.GetRunResult().Results.Single();

        foreach (var step in s_trackedSteps)
        {
            foreach (var output in result.TrackedSteps[step].SelectMany(s => s.Outputs))
                AssertNoRoslynObjects(output.Value, step, new HashSet<object>(ReferenceEqualityComparer.Instance));
        }
    }

    private static void AssertNoRoslynObjects(object? value, string path, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum || !seen.Add(value))
            return;
        Assert.False(value is Compilation or ISymbol or SyntaxNode or SyntaxTree or Location or SemanticModel,
            $"{path} holds a {value.GetType().Name}, which pins a compilation and defeats caching");
        if (value is IEnumerable items)
        {
            var i = 0;
            foreach (var item in items)
                AssertNoRoslynObjects(item, $"{path}[{i++}]", seen);
            return;
        }
        foreach (var field in value.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            AssertNoRoslynObjects(field.GetValue(value), $"{path}.{field.Name}", seen);
    }
}
