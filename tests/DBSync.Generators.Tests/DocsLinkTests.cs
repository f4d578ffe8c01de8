using System.Text;
using System.Text.RegularExpressions;

namespace DBSync.Generators.Tests;

/// <summary>The links between README.md and the pages under docs/ lead somewhere: a relative link names a file of the
/// repository, and an anchor names a heading of its page (as GitHub makes anchors from headings).</summary>
public sealed partial class DocsLinkTests
{
    [Theory]
    [MemberData(nameof(ReadmeExampleTests.Pages), MemberType = typeof(ReadmeExampleTests))]
    public void Links_LeadToExistingFilesAndHeadings(string page)
    {
        var root = GeneratorHarness.RepositoryRoot();
        var broken = new List<string>();
        foreach (Match link in LinkPattern().Matches(WithoutCodeBlocks(ReadPage(root, page))))
        {
            var target = link.Groups["target"].Value;
            if (target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal))
                continue;
            var hash = target.IndexOf('#', StringComparison.Ordinal);
            var path = hash < 0 ? target : target[..hash];
            var file = path.Length == 0 ? page : Path.GetRelativePath(root, Path.GetFullPath(Path.Combine(root, Path.GetDirectoryName(page)!, path))).Replace('\\', '/');
            if (!File.Exists(Path.Combine(root, file)) && !Directory.Exists(Path.Combine(root, file)))
            {
                broken.Add($"{target} (no file {file})");
                continue;
            }
            if (hash >= 0 && !Anchors(ReadPage(root, file)).Contains(target[(hash + 1)..]))
                broken.Add($"{target} (no heading of {file} has that anchor)");
        }
        Assert.True(broken.Count == 0, $"{page} links to: {string.Join("; ", broken)}");
    }

    [Fact]
    public void Anchors_AreMadeAsGitHubMakesThem()
    {
        var anchors = Anchors("# DBSync\n## Hosting: `services.AddDBSync(...)`\n## An example\n## An example\n```sh\n# not a heading\n```\n");
        Assert.Equal(["an-example", "an-example-1", "dbsync", "hosting-servicesadddbsync"], anchors.Order(StringComparer.Ordinal));
    }

    private static string ReadPage(string root, string page) => File.ReadAllText(Path.Combine(root, page)).ReplaceLineEndings("\n");

    /// <summary>The anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens, and a repeated
    /// heading numbered (-1, -2, ...).</summary>
    private static HashSet<string> Anchors(string markdown)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in WithoutCodeBlocks(markdown).Split('\n'))
        {
            var heading = HeadingPattern().Match(line);
            if (!heading.Success)
                continue;
            var slug = new StringBuilder();
            foreach (var c in heading.Groups["text"].Value.Trim().ToLowerInvariant())
            {
                if (char.IsLetterOrDigit(c) || c is '-' or '_')
                    slug.Append(c);
                else if (c == ' ')
                    slug.Append('-');
            }
            var anchor = slug.ToString();
            for (var n = 1; !anchors.Add(anchor); n++)
                anchor = $"{slug}-{n}";
        }
        return anchors;
    }

    /// <summary>The page with its fenced code blocks blanked out (a <c># comment</c> in a shell block is no heading, and
    /// code is no link).</summary>
    private static string WithoutCodeBlocks(string markdown) => FencePattern().Replace(markdown, "");

    [GeneratedRegex(@"\[[^\]]*\]\((?<target>[^)\s]+)\)")]
    private static partial Regex LinkPattern();

    [GeneratedRegex(@"^#{1,6} (?<text>.+)$")]
    private static partial Regex HeadingPattern();

    [GeneratedRegex(@"^```[^\n]*\n.*?^```$", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex FencePattern();
}
