import XCTest
final class GeneratedTestsSmoke: XCTestCase { func testNothing() {} }
