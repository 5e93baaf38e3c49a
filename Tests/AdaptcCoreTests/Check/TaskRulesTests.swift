import AdaptRuntime
import XCTest
@testable import AdaptcCore

/// `model.tasks`, a group's `tasks:`, the `task` mode in `order` and `train:`
/// (DESIGN §2 "Tasks", §3): what Check resolves, and each mistake as one
/// located error (`path:line:column`, the offending list element).
final class TaskRulesTests: XCTestCase {
    /// A tensor-train over 2 layers × 2 modules [4, 6] with the given extra lines.
    private func spec(tasks: String? = "[sst2, mnli, qnli]", group: String) -> String {
        """
        adaptc: 1
        name: Multi
        model:
          layers: 2
          modules: {query: [4, 6], value: [4, 6]}
        \(tasks.map { "  tasks: \($0)" } ?? "  inputs: {}")
        adapters:
        \(group)
        """
    }

    private func firstError(_ yaml: String) -> Diagnostic? {
        SpecTestSupport.diagnostics(yaml).first { $0.severity == .error }
    }

    private func assertError(_ yaml: String, at lineColumn: String, _ keyword: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let error = firstError(yaml) else {
            XCTFail("no error; expected one at \(lineColumn)", file: file, line: line)
            return
        }
        let prefix = "\(SpecTestSupport.path):\(lineColumn): error: "
        XCTAssertTrue(error.description.hasPrefix(prefix), "\(error) does not start with \(prefix)", file: file, line: line)
        XCTAssertTrue(error.message.contains(keyword), "'\(error.message)' lacks '\(keyword)'", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
    }

    // MARK: what Check resolves

    func testTensorTrainWithTasksGainsATaskModeFirstByDefault() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 2
                tasks: all
            """)))
        let g = checked.groups[0]
        XCTAssertEqual(checked.spec.model.tasks, ["sst2", "mnli", "qnli"])
        XCTAssertEqual(g.tasks, ["sst2", "mnli", "qnli"])
        XCTAssertEqual(g.modes.map(\.description), ["task=3", "layer=2", "module=2", "out=4", "in=6"])
        XCTAssertTrue(g.isTrainable(carrying: [.layer]), "no train: everything learns")
    }

    func testOrderPlacesTheTaskModeAndTrainSelectsByMode() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query, value]
                factor: {in: [2, 3]}
                order: [in, task, layer, module, out]
                rank: 2
                tasks: [mnli, sst2]
                train: [task, in.1]
            """)))
        let g = checked.groups[0]
        XCTAssertEqual(g.tasks, ["mnli", "sst2"], "as listed")
        XCTAssertEqual(g.modes.map(\.description), ["in.0=2", "in.1=3", "task=2", "layer=2", "module=2", "out=4"])
        XCTAssertTrue(g.isTrainable(carrying: [.task]))
        XCTAssertTrue(g.isTrainable(carrying: [ModeName(.in, factor: 1)]))
        XCTAssertFalse(g.isTrainable(carrying: [ModeName(.in, factor: 0)]))
        XCTAssertFalse(g.isTrainable(carrying: [.layer]))
        XCTAssertFalse(g.isTrainable(carrying: [.out]))
    }

    func testWholeOutInTrainStandsForEveryFactor() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked(spec(tasks: nil, group: """
              - name: attn
                structure: cp
                modules: [query, value]
                factor: {out: [2, 2]}
                rank: 2
                train: [out]
            """)))
        let g = checked.groups[0]
        XCTAssertTrue(g.isTrainable(carrying: [ModeName(.out, factor: 0)]))
        XCTAssertTrue(g.isTrainable(carrying: [ModeName(.out, factor: 1)]))
        XCTAssertFalse(g.isTrainable(carrying: [.in]))
    }

    func testLoRAWithTasksAndTrain() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked(spec(group: """
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 2
                tasks: all
                train: [out, task]
            """)))
        XCTAssertEqual(checked.groups[0].tasks.count, 3)
        XCTAssertEqual(checked.groups[0].modes, [])
    }

    func testTasksEnterTheHashOnlyWhenGiven() throws {
        let plain = try XCTUnwrap(SpecTestSupport.checked(spec(tasks: nil, group: """
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 2
            """)))
        XCTAssertFalse(SpecHash.canonicalText(plain).contains("tasks"), "single-task specs hash as before")
        let multi = try XCTUnwrap(SpecTestSupport.checked(spec(group: """
              - name: attn
                structure: lora
                modules: [query, value]
                rank: 2
                tasks: [qnli]
            """)))
        XCTAssertTrue(SpecHash.canonicalText(multi).contains("  tasks qnli\n"))
        XCTAssertNotEqual(SpecHash.hash(plain), SpecHash.hash(multi))
    }

    // MARK: located errors

    func testUnknownTaskInAGroup() {
        assertError(spec(group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
                tasks: [sst2, mnly]
            """), at: "12:19", "unknown task 'mnly'; did you mean 'mnli'?")
    }

    func testTaskListedTwiceInAGroup() {
        assertError(spec(group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
                tasks: [sst2, mnli, sst2]
            """), at: "12:25", "task 'sst2' is listed twice in group 'attn'")
    }

    func testTaskListedTwiceInTheModel() {
        assertError(spec(tasks: "[sst2, mnli, mnli]", group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
            """), at: "6:23", "task 'mnli' is listed twice in 'model.tasks'")
    }

    func testTaskNameMustBeSnakeCase() {
        assertError(spec(tasks: "[sst2, MNLI]", group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
            """), at: "6:17", "lower_snake_case")
    }

    func testTasksAllWithoutModelTasks() {
        assertError(spec(tasks: nil, group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
                tasks: all
            """), at: "12:5", "the model names no tasks")
    }

    func testTaskInTheOrderOfAGroupWithoutTasks() {
        assertError(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query, value]
                order: [layer, task, module, out, in]
                rank: 2
            """), at: "11:20", "'task' is a mode only of a group with tasks")
    }

    func testTrainNamesTheTaskModeOfAGroupWithoutTasks() {
        assertError(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query, value]
                rank: 2
                train: [layer, task]
            """), at: "12:20", "'train' names mode 'task', which group 'attn' does not have")
    }

    func testTrainNamesAFactorTheGroupHasNot() {
        assertError(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query, value]
                factor: {in: [2, 3]}
                rank: 2
                train: [in.2]
            """), at: "13:13", "'train' names mode 'in.2'")
    }

    func testTrainOnLoRANamesNoFactors() {
        assertError(spec(group: """
              - name: attn
                structure: lora
                modules: [query]
                rank: 2
                train: [out.0]
            """), at: "12:13", "(its modes: layer, module, out, in)")
    }

    func testTrainListsAModeTwice() {
        assertError(spec(group: """
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 2
                tasks: all
                train: [task, layer, task]
            """), at: "13:26", "mode 'task' is listed twice in 'train'")
    }

    func testTrainMustNotBeEmpty() {
        assertError(spec(group: """
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 2
                train: []
            """), at: "12:5", "'train' lists no modes")
    }

    func testUnknownModeInTrainIsAParseError() {
        assertError(spec(group: """
              - name: attn
                structure: cp
                modules: [query, value]
                rank: 2
                train: [tsk]
            """), at: "12:13", "did you mean 'task'?")
    }

    // MARK: the planner refuses what it cannot plan yet

    /// Lora groups with tasks plan (TaskLoRATests); tensor networks with a task mode do not yet.
    func testPlanningAGroupWithTasksIsRefusedWithOneLocatedLine() throws {
        let checked = try XCTUnwrap(SpecTestSupport.checked(spec(group: """
              - name: attn
                structure: tensor-train
                modules: [query]
                rank: 2
                tasks: all
            """)))
        let (plan, diagnostics) = Planner.plan(checked)
        XCTAssertNil(plan)
        XCTAssertEqual(diagnostics.count, 1)
        let error = try XCTUnwrap(diagnostics.first)
        XCTAssertTrue(error.description.hasPrefix("\(SpecTestSupport.path):12:5: error: not supported yet: group 'attn' is a tensor-train group with tasks"),
                      error.description)
    }
}
