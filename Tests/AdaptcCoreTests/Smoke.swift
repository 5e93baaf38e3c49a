import XCTest
final class AdaptcCoreTestsSmoke: XCTestCase { func testNothing() {} }
