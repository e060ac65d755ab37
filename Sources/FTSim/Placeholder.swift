// placeholder so the target builds until the simulator lands
enum FTSimPlaceholder {}
