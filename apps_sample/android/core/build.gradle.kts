// Pure Kotlin/JVM: no Android dependency, so its tests run on any JVM (and in CI with kotlinc, see scripts/test-core.sh).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation(libs.gson)
    testImplementation(libs.junit)
}

// Goldens come from 'pocketbert goldens' (never committed): ./gradlew :core:test -Pgoldens=/abs/path/to/goldens
tasks.test {
    val goldens = providers.gradleProperty("goldens").orElse(layout.buildDirectory.dir("goldens").map { it.asFile.path })
    systemProperty("pocketbert.goldens", goldens.get())
}
