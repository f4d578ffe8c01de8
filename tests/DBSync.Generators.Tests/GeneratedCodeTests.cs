using Microsoft.CodeAnalysis;

namespace DBSync.Generators.Tests;

public sealed class GeneratedCodeTests
{
    [Theory]
    [InlineData("User")]
    [InlineData("Restaurant")]
    [InlineData("Visit")]
    public void SeedEntity_GeneratedCode_MatchesCheckedInSnapshot(string entity)
    {
        var (_, diagnostics, sources) = GeneratorHarness.Run(GeneratorHarness.SeedEntities);

        Assert.Empty(diagnostics);
        Snapshot.Match(sources[$"DBSync.Sample.{entity}.SyncTable.g.cs"], entity);
    }

    [Fact]
    public void EntityWithEveryType_GeneratedCode_MatchesCheckedInSnapshot_AndCompilesWithoutWarnings()
    {
        var (output, diagnostics, sources) = GeneratorHarness.Run(GeneratorHarness.TypeRowEntity);

        Assert.Empty(diagnostics);
        var problems = output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Snapshot.Match(sources["DBSync.IntegrationTests.Types.TypeRow.SyncTable.g.cs"], "TypeRow");
    }

    [Fact]
    public void GeneratedCode_ForEveryEntityShape_CompilesWithoutErrorsOrWarnings()
    {
        const string shapes = """
            using System;
            using DBSync;

            namespace Shapes;

            [SyncTable("sales.orders")]
            public partial record struct Order([property: PrimaryKey] long Id, decimal Total)
            {
                public DateTimeOffset PlacedAt { get; init; }
            }

            [SyncTable("people")]
            public partial record Person([property: PrimaryKey] Guid Id, string Name, string? Nick);

            public static partial class Outer
            {
                public partial class Inner
                {
                    [SyncTable("nested_things")]
                    public partial class Thing
                    {
                        [PrimaryKey] public short Code { get; init; }
                        [Column("flag_value")] public bool Flag { get; set; }
                        public DateTime Stamp { get; set; }
                        public DateTime? MaybeStamp { get; set; }
                        public string[] Labels { get; set; } = [];
                        [SyncIgnore] public object? Cache { get; set; }
                        public string Computed => Code.ToString();
                    }
                }
            }
            """;
        var (output, diagnostics, sources) = GeneratorHarness.Run(GeneratorHarness.SeedEntities, shapes);

        Assert.Empty(diagnostics);
        Assert.Equal(
            ["DBSync.Sample.Restaurant.SyncTable.g.cs", "DBSync.Sample.User.SyncTable.g.cs", "DBSync.Sample.Visit.SyncTable.g.cs",
             "Shapes.Order.SyncTable.g.cs", "Shapes.Outer.Inner.Thing.SyncTable.g.cs", "Shapes.Person.SyncTable.g.cs"],
            sources.Keys.Order(StringComparer.Ordinal));
        var problems = output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        var thing = sources["Shapes.Outer.Inner.Thing.SyncTable.g.cs"];
        Assert.Contains("\"flag_value\", \"Flag\"", thing, StringComparison.Ordinal);
        Assert.DoesNotContain("Cache", thing, StringComparison.Ordinal);
        Assert.DoesNotContain("Computed", thing, StringComparison.Ordinal);
        Assert.Contains("new global::Shapes.Person(__c0, __c1, __c2)", sources["Shapes.Person.SyncTable.g.cs"], StringComparison.Ordinal);
        Assert.Contains("\"sales\", \"orders\"", sources["Shapes.Order.SyncTable.g.cs"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("FirstName", "first_name")]
    [InlineData("DateOfBirth", "date_of_birth")]
    [InlineData("Id", "id")]
    [InlineData("HTTPCode", "http_code")]
    [InlineData("UserID", "user_id")]
    [InlineData("Address2", "address2")]
    [InlineData("already_snake", "already_snake")]
    [InlineData("ABC", "abc")]
    public void SnakeCase_OfPropertyNames_MatchesPostgresConvention(string property, string column)
        => Assert.Equal(column, Helpers.NameConversions.ToSnakeCase(property));
}
