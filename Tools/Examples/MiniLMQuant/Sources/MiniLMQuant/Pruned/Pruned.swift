enum Pruned {
    static func run(_ options: Options) throws {}
}
