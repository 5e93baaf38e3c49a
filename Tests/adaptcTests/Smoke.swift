import XCTest
final class adaptcTestsSmoke: XCTestCase { func testNothing() {} }
