import XCTest
final class AdaptRuntimeTestsSmoke: XCTestCase { func testNothing() {} }
