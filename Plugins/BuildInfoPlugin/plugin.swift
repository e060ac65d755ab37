import Foundation
import PackagePlugin

/// Writes BuildInfo.swift (the git commit of the package directory) before
/// every build of the `ftap` target. The script rewrites the file only when
/// the commit changed, so an unchanged tree does not recompile. No network:
/// it reads the local repository with git (a tree without .git says
/// "unknown").
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL.appendingPathComponent("gen")
        let script = context.package.directoryURL.appendingPathComponent("scripts/build-info.sh")
        return [.prebuildCommand(
            displayName: "ftap build info (git commit)",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [script.path, context.package.directoryURL.path, out.path],
            outputFilesDirectory: out)]
    }
}
